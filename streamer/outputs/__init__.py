"""The plant's outputs: MQTT, OPC UA and Modbus TCP, fed every message the processor publishes (docs/plant-*.md)."""
