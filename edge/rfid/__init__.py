"""RFID at the gateway: reader adapters, tag presence per lot."""
