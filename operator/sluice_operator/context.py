"""The operator's parts wired together: the API client, the Kafka admin clients, the work
queue that runs reconciles and the periodic re-check that feeds it. Kopf hands this to
every handler as ``memo``; tests and the benchmark keep hold of it for its metrics."""

from __future__ import annotations

from dataclasses import dataclass

from sluice_operator.kafka_facts import KafkaFactsReader
from sluice_operator.kube import Kube, load_configuration
from sluice_operator.metrics import OperatorMetrics
from sluice_operator.periodic import PeriodicRechecks
from sluice_operator.pod_health import PodHealthReader, Resolver, dns_resolver
from sluice_operator.reconcile import Outcome, reconcile_connector
from sluice_operator.settings import OperatorConfig
from sluice_operator.workqueue import Backoff, WorkQueue


@dataclass
class OperatorContext:
    config: OperatorConfig
    kube: Kube
    kafka: KafkaFactsReader
    metrics: OperatorMetrics
    queue: WorkQueue
    periodic: PeriodicRechecks

    @classmethod
    def create(
        cls,
        config: OperatorConfig,
        kubeconfig: str | None = None,
        resolver: Resolver = dns_resolver,
    ) -> OperatorContext:
        """``resolver`` finds the runtime pods behind a Service name (cluster DNS; tests
        that run the pods as local processes pass their own)."""
        metrics = OperatorMetrics()
        kube = Kube(
            load_configuration(kubeconfig),
            pool_size=config.workers + 4,
            on_write=metrics.count_write,
        )
        kafka = KafkaFactsReader(config.kafka_timeout)
        pods = PodHealthReader(config.cluster_domain, resolver)

        def reconcile(namespace: str, name: str) -> Outcome:
            return reconcile_connector(kube, kafka, config, namespace, name, pods=pods)

        queue = WorkQueue(
            reconcile,
            config.workers,
            Backoff(config.timer_interval, config.backoff_max),
            metrics,
        )

        async def recheck(namespace: str, name: str) -> None:
            await queue.submit(namespace, name, "timer")

        periodic = PeriodicRechecks(config.timer_interval, recheck)
        return cls(config, kube, kafka, metrics, queue, periodic)

    def close(self) -> None:
        self.queue.close()
        self.kafka.close()
        self.kube.close()
