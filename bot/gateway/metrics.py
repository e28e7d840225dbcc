"""Prometheus metrics of the gateway (rules §OPS-1), in a registry of its own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.messages_in = Counter("kefu_gateway_messages_in_total", "Customer messages received",
                                   ["channel", "route"], registry=self.registry)
        self.messages_out = Counter("kefu_gateway_messages_out_total", "Messages delivered",
                                    ["channel", "kind"], registry=self.registry)
        self.delivery_failures = Counter("kefu_gateway_delivery_failures_total",
                                         "Failed delivery attempts (retried with backoff)",
                                         ["channel"], registry=self.registry)
        self.handoffs = Counter("kefu_gateway_handoffs_total", "Conversations handed to people",
                                ["reason"], registry=self.registry)
        self.errors = Counter("kefu_gateway_errors_total", "Errors by kind", ["kind"],
                              registry=self.registry)
        self.duplicates = Counter("kefu_gateway_duplicates_total", "Redelivered messages ignored",
                                  ["channel"], registry=self.registry)
        self.rate_limited = Counter("kefu_gateway_rate_limited_total",
                                    "Messages refused by the rate limit", ["channel"],
                                    registry=self.registry)
        self.latency = Histogram("kefu_gateway_turn_seconds",
                                 "From a message's arrival to its answers being handed out",
                                 ["route"], registry=self.registry,
                                 buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60))
        self.rasa_latency = Histogram("kefu_gateway_rasa_seconds", "Rasa webhook round trip",
                                      registry=self.registry,
                                      buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30))
        self.connections = Gauge("kefu_gateway_widget_connections", "Open widget WebSockets",
                                 registry=self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)
