"""What a user could write or pick instead of Sluice, run side by side with it by
``python -m bench --only peers`` (see docs/benchmarks.md): a hand-tuned Python consumer,
Kafka's own consumer perf tool (the consume ceiling) and an Apache Camel route."""
