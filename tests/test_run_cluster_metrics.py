"""`make run-cluster` gives every background process a metrics port of its own (base + 10·i,
like the other kinds); the processes with an HTTP server keep ``/metrics`` on their port."""

from __future__ import annotations

from scripts.run_cluster import Layout, cluster_services


def test_each_background_process_gets_its_own_metrics_port(tmp_path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    (models / "kefu.tar.gz").write_bytes(b"")  # only its path is used here
    environ = {"KEFU_VAR_DIR": str(tmp_path), "KEFU_MODELS_DIR": str(models),
               "KEFU_DATABASE_URL": "postgresql+psycopg://kefu@127.0.0.1/kefu",
               "KEFU_REDIS_URL": "redis://127.0.0.1:6379/0", "KEFU_METRICS_PORT": "9999"}
    layout = Layout(workers=2, webhooks=2, worker_metrics_port=9102, webhooks_metrics_port=9103,
                    alerts_metrics_port=9104)
    services = {s.name: s for s in cluster_services(layout, environ)}

    ports = {name: s.env["KEFU_METRICS_PORT"] for name, s in services.items()
             if name.startswith(("worker", "webhooks", "alerts"))}
    assert ports == {"worker-0": "9102", "worker-1": "9112", "webhooks-0": "9103",
                     "webhooks-1": "9113", "alerts": "9104"}
    assert services["worker-1"].where == "background, metrics http://127.0.0.1:9112/metrics"
    assert all(services[name].env["KEFU_METRICS_HOST"] == "127.0.0.1" for name in ports)
    assert services["actions-0"].argv[1:3] == ["-m", "actions.server"]  # /metrics on 5055


def test_the_default_ports_follow_the_gateway_and_desk() -> None:
    layout = Layout()
    assert (layout.gateway_port, layout.desk_port, layout.worker_metrics_port,
            layout.webhooks_metrics_port, layout.alerts_metrics_port) \
        == (8000, 8001, 8002, 8003, 8004)
