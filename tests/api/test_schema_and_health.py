import pytest

pytestmark = pytest.mark.django_db


def test_the_openapi_schema_describes_the_search_endpoints(client):
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert set(paths["/matching/searches"]) == {"get", "post"}
    assert "get" in paths["/matching/searches/{search_id}"]


def test_the_docs_page_is_served(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    assert b"swagger" in response.content.lower()


def test_health_reports_the_database_and_the_broker(client):
    response = client.get("/health")
    assert response.status_code == 200
    # No host snapshot in tests (conftest), and this process has not loaded the warm index.
    assert response.json() == {
        "status": "ok",
        "database": "ok",
        "broker": "ok",
        "index": {"snapshot": None, "process": None},
    }


def test_health_is_503_when_the_broker_is_unreachable(client, settings, monkeypatch):
    from snowbuddy.celery import app

    monkeypatch.setattr(app.conf, "broker_url", "redis://127.0.0.1:1/0")
    response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["broker"].startswith("error")
