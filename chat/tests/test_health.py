from unittest import mock

from django.db import OperationalError
from django.test import TransactionTestCase

from chat import health
from chat.services import message_create, room_get_or_create


class HealthzTests(TransactionTestCase):
    def test_healthz_answers_200_when_the_database_and_the_layer_answer(self) -> None:
        response = self.client.get("/healthz")
        self.assertEqual(response.status_code, 200)
        body = response.json()
        self.assertEqual(body["status"], "ok")
        self.assertTrue(body["database"]["ok"])
        self.assertTrue(body["channel_layer"]["ok"])

    def test_healthz_answers_503_and_names_the_database_when_it_is_down(self) -> None:
        async def down() -> None:
            raise OperationalError("connection refused")

        with mock.patch.object(health, "_check_database", down):
            response = self.client.get("/healthz")
        self.assertEqual(response.status_code, 503)
        self.assertEqual(response.json()["database"], {"ok": False, "error": "OperationalError"})
        self.assertTrue(response.json()["channel_layer"]["ok"])

    def test_healthz_answers_503_when_the_layer_round_trip_times_out(self) -> None:
        async def hang() -> None:
            raise TimeoutError

        with mock.patch.object(health, "_check_layer", hang):
            response = self.client.get("/healthz")
        self.assertEqual(response.status_code, 503)
        self.assertFalse(response.json()["channel_layer"]["ok"])


class MetricsTests(TransactionTestCase):
    def metric(self, name: str) -> float:
        text = self.client.get("/metrics").content.decode()
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise AssertionError(f"{name} not in /metrics")

    def test_metrics_are_served_in_prometheus_text_format(self) -> None:
        response = self.client.get("/metrics")
        self.assertEqual(response.status_code, 200)
        self.assertTrue(response["Content-Type"].startswith("text/plain"))
        self.assertIn("# TYPE chat_messages_stored_total counter", response.content.decode())

    def test_storing_a_message_counts_it(self) -> None:
        before = self.metric("chat_messages_stored_total")
        message_create(room=room_get_or_create("lobby"), author="system", body="hi")
        self.assertEqual(self.metric("chat_messages_stored_total"), before + 1)
