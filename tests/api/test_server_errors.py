import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.allow_server_error
def test_an_unexpected_error_is_a_json_500_without_a_stack_trace(client, owner, resorts, monkeypatch):
    def explode(self, request, *args, **kwargs):
        raise RuntimeError("secret internals: /etc/passwd")

    monkeypatch.setattr("matching.api.views.SearchViewSet.list", explode)
    client.raise_request_exception = False
    response = owner.get("/matching/searches")
    assert response.status_code == 500
    assert response.json() == {
        "type": "server_error",
        "errors": [{"code": "server_error", "detail": "Internal error.", "attr": None}],
    }
    assert b"secret internals" not in response.content and b"Traceback" not in response.content
