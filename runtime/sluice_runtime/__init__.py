"""Sluice's data plane: Kafka → filter → transform → window → HTTP function, with acks."""
