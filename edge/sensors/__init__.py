"""Environment and tamper sensors: adapters (MQTT JSON, Modbus TCP) and threshold decisions."""
