"""REST contract: auth, validation (422, unknown fields), paging, read marks, push
subscriptions, probes and OpenAPI."""

from __future__ import annotations

from events.kafka import KafkaSettings
from tests.integration.notify.conftest import (
    Kafka,
    SmtpSink,
    auth,
    eventually,
    make_settings,
    running,
    task_created,
)

P256 = "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM"


async def test_inbox_paging_read_marks_preferences_and_probes(
    notify_db: str, smtp: SmtpSink, kafka_settings: KafkaSettings, kafka: Kafka
) -> None:
    async with running(make_settings(notify_db, smtp.port), kafka_settings) as svc:
        http = svc.http
        assert (await http.get("/api/v1/notifications")).status_code == 401
        bad = await http.get("/api/v1/notifications", headers={"Authorization": "Bearer x"})
        assert bad.status_code == 401 and bad.headers["content-type"] == "application/problem+json"
        for i in range(5):
            await kafka.produce(task_created("nina", f"t{i}"), "nina")

        async def five() -> bool:
            r = await http.get("/api/v1/notifications", headers=auth("nina"))
            return r.json()["unread_count"] == 5

        await eventually(five)
        first = (await http.get("/api/v1/notifications?limit=2", headers=auth("nina"))).json()
        assert [i["seq"] for i in first["items"]] == [5, 4] and first["next_cursor"]
        await kafka.produce(task_created("nina", "newer"), "nina")  # stable under inserts

        async def six() -> bool:
            r = await http.get("/api/v1/notifications", headers=auth("nina"))
            return r.json()["unread_count"] == 6

        await eventually(six)
        second = (
            await http.get(f"/api/v1/notifications?limit=2&cursor={first['next_cursor']}",
                           headers=auth("nina"))
        ).json()  # fmt: skip
        assert [i["seq"] for i in second["items"]] == [3, 2]
        r = await http.post(f"/api/v1/notifications/{second['items'][0]['id']}/read",
                            headers=auth("nina"))  # fmt: skip
        assert r.status_code == 200
        unread = (await http.get("/api/v1/notifications?unread_only=true&limit=200",
                                 headers=auth("nina"))).json()  # fmt: skip
        assert 3 not in [i["seq"] for i in unread["items"]]
        r = await http.post("/api/v1/notifications/read-all", headers=auth("nina"))
        assert r.status_code == 200 and r.json()["unread_count"] == 0
        for query in ("limit=0", "limit=201", "cursor=%%%", "unread_only=maybe"):
            r = await http.get(f"/api/v1/notifications?{query}", headers=auth("nina"))
            assert r.status_code == 422, query
        r = await http.post("/api/v1/notifications/not-a-uuid/read", headers=auth("nina"))
        assert r.status_code == 422

        # Preferences
        assert (await http.get("/api/v1/preferences", headers=auth("nina"))).json() == {
            "channels": {"in_app": True, "email": False, "push": False, "webhook": False},
            "email": None, "webhook_url": None, "timezone": "UTC", "quiet_hours": None,
            "digest": False,
        }  # fmt: skip
        for body, field in (
            ({"timezone": "Mars/Base"}, "timezone"),
            ({"quiet_hours": {"start": "25:00", "end": "07:00"}}, "quiet_hours.start"),
            ({"surprise": 1}, "surprise"),
            ({"channels": {"sms": True}}, "channels.sms"),
            ({"webhook_url": "not a url"}, "webhook_url"),
        ):
            r = await http.put("/api/v1/preferences", headers=auth("nina"), json=body)
            assert r.status_code == 422, body
            assert field in [e["field"] for e in r.json()["errors"]], r.json()

        # Push subscriptions
        sub = {"endpoint": "https://push.example.test/abc", "keys": {"p256dh": P256,
               "auth": "tBHItJI5svbpez7KI4CCXg"}}  # fmt: skip
        r = await http.post("/api/v1/push-subscriptions", headers=auth("nina"), json=sub)
        assert r.status_code == 201
        sub_id = r.json()["id"]
        bad_sub = {**sub, "keys": {"p256dh": "short", "auth": "x"}}
        r = await http.post("/api/v1/push-subscriptions", headers=auth("nina"), json=bad_sub)
        assert r.status_code == 422
        r = await http.delete(f"/api/v1/push-subscriptions/{sub_id}", headers=auth("omar"))
        assert r.status_code == 404  # another user's id
        r = await http.delete(f"/api/v1/push-subscriptions/{sub_id}", headers=auth("nina"))
        assert r.status_code == 204

        # Probes, metrics, OpenAPI
        assert (await http.get("/readyz")).status_code == 200
        metrics = (await http.get("/metrics")).text
        for name in (
            "taskflow_websocket_connections",
            "taskflow_consumer_lag_messages",
            "taskflow_websocket_frames_total",
            "taskflow_channel_deliveries_total",
        ):
            assert name in metrics
        spec = (await http.get("/openapi.json")).json()
        assert "/api/v1/preferences" in spec["paths"]
