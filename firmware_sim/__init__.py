"""The simulated warehouse: RFID readers, cameras, trackers, sensors and scripted scenarios."""
