"""Each person reads times in their own zone (URS-OPS-03); stored times stay UTC."""
import pytest

from tests.conftest import PASSWORD
from webapp import create_app


@pytest.fixture
def client_for(loaded_runtime, users):
    app = create_app({"TESTING": True, "WTF_CSRF_ENABLED": False}, runtime=loaded_runtime)
    loaded_runtime.add_user(None, "adam", "Adam Admin", PASSWORD, ["Admin"])

    def make(username):
        client = app.test_client()
        response = client.post("/login", data={"username": username, "password": PASSWORD})
        assert response.status_code in (302, 303), response.data[:300]
        return client
    return make


@pytest.mark.urs("URS-OPS-03")
def test_a_person_chooses_the_time_zone_their_pages_show_times_in(client_for, loaded_runtime):
    client = client_for("quinn")
    assert b"Show times in" in client.get("/password").data
    response = client.post("/timezone", data={"timezone": "America/New_York"})
    assert response.status_code == 303
    assert loaded_runtime.user_by_username("quinn").timezone == "America/New_York"
    assert b"America/New_York" in client.get("/", follow_redirects=True).data


@pytest.mark.urs("URS-OPS-03")
@pytest.mark.urs("URS-SEC-05")
def test_an_unknown_zone_is_refused_and_only_an_administrator_sets_another_persons_zone(client_for, loaded_runtime):
    from engine.exceptions import Forbidden

    client = client_for("quinn")
    client.post("/timezone", data={"timezone": "Mars/Olympus_Mons"})
    assert loaded_runtime.user_by_username("quinn").timezone == "UTC"
    with pytest.raises(Forbidden):
        loaded_runtime.set_timezone(loaded_runtime.user_by_username("quinn"), "ivan", "Europe/Paris")
    admin = client_for("adam")
    assert admin.post("/admin/users/ivan/timezone", data={"timezone": "Europe/Paris"}).status_code == 302
    assert loaded_runtime.user_by_username("ivan").timezone == "Europe/Paris"
    assert admin.post("/admin/users/ivan/timezone", data={"timezone": "Nowhere"}).status_code == 400
