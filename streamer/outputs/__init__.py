"""The plant's outputs: MQTT, OPC UA and Modbus TCP, fed with every message the processor publishes (docs/plant-*.md)."""
