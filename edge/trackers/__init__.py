"""GPS trackers at the gateway: OwnTracks JSON over MQTT, crossing decisions, theft and silence."""
