"""OAuth: client credentials over HTTP Basic, tokens that expire and can be revoked."""

from __future__ import annotations

import pytest

from tests.sandbox.helpers import Daraja, FakeClock, SimFactory, basic


def test_valid_credentials_get_a_token_with_string_expiry(daraja: Daraja) -> None:
    result = daraja.oauth()

    assert result.status_code == 200
    assert set(result.json) == {"access_token", "expires_in"}
    assert result.json["expires_in"] == "3599"
    assert len(result.json["access_token"]) == 28
    assert daraja.oauth().json["access_token"] != result.json["access_token"]


@pytest.mark.parametrize("params", [{"grant_type": "password"}, {"other": "x"}])
def test_wrong_or_missing_grant_type_is_400_008_02(daraja: Daraja, params: dict[str, str]) -> None:
    result = daraja.oauth(**params)

    assert result.status_code == 400
    assert result.json["errorCode"] == "400.008.02"
    assert result.json["errorMessage"] == "Invalid grant type passed"
    assert result.json["requestId"]


@pytest.mark.parametrize(
    "authorization",
    [
        basic(secret="wrong"),
        basic(key="unknown"),
        "Bearer abc",
        "Basic not-base64!!",
        "Basic " + "bm9jb2xvbg==",  # "nocolon"
    ],
)
def test_bad_credentials_are_400_008_01(daraja: Daraja, authorization: str) -> None:
    result = daraja.oauth(authorization)

    assert result.status_code == 400
    assert result.json["errorCode"] == "400.008.01"
    assert result.json["errorMessage"] == "Invalid Authentication passed"


def test_missing_authorization_is_400_008_01(daraja: Daraja) -> None:
    result = daraja.client.simulate_get(
        "/oauth/v1/generate", params={"grant_type": "client_credentials"}
    )

    assert result.status_code == 400
    assert result.json["errorCode"] == "400.008.01"


def test_registered_app_can_authenticate(daraja: Daraja) -> None:
    added = daraja.control("POST", "/apps", {"consumer_key": "k2", "consumer_secret": "s2"})

    assert added.status_code == 201
    assert daraja.oauth(basic("k2", "s2")).status_code == 200


def test_token_ttl_comes_from_config(make_sim: SimFactory) -> None:
    assert Daraja(make_sim(token_ttl_s=60)).oauth().json["expires_in"] == "60"


def test_expired_token_is_404_001_03(make_sim: SimFactory) -> None:
    clock = FakeClock()
    daraja = Daraja(make_sim(clock=clock, token_ttl_s=3599))
    token = daraja.token()

    clock.advance(3598.9)
    assert daraja.push().status_code == 200
    clock.advance(0.2)
    result = daraja.post("/mpesa/stkpush/v1/processrequest", daraja.push_body(), token=token)

    assert result.status_code == 404
    assert result.json["errorCode"] == "404.001.03"
    assert result.json["errorMessage"] == "Invalid Access Token"


def test_revoked_tokens_are_404_001_03_until_a_new_one_is_fetched(daraja: Daraja) -> None:
    old = daraja.token()
    assert daraja.control("POST", "/tokens/revoke").json == {"revoked": 1}

    result = daraja.post("/mpesa/stkpush/v1/processrequest", daraja.push_body(), token=old)

    assert result.status_code == 404
    assert result.json["errorCode"] == "404.001.03"
    daraja.token(fresh=True)
    assert daraja.push().status_code == 200


@pytest.mark.parametrize("authorization", [None, "Bearer", "Bearer unknown-token", "Basic abc"])
def test_missing_or_unknown_bearer_is_404_001_03(daraja: Daraja, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    for path in ("/mpesa/stkpush/v1/processrequest", "/mpesa/stkpushquery/v1/query"):
        result = daraja.client.simulate_post(path, json=daraja.push_body(), headers=headers)

        assert result.status_code == 404
        assert result.json["errorCode"] == "404.001.03"
