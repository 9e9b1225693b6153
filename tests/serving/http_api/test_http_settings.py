"""The HTTP API's settings and the credentials of its channel to the gateway, without a server."""
from __future__ import annotations

import pytest

from common.connect import forwarding_credentials
from common.errors import ConfigError
from common.settings import Settings


def test_its_address_is_loopback_unless_the_gateway_has_tls_or_is_declared_insecure():
    with pytest.raises(ValueError, match="http_address 0.0.0.0 is not loopback.*gateway_insecure"):
        Settings(http_address="0.0.0.0")
    assert Settings(http_address="0.0.0.0", gateway_insecure=True).http_url == "http://127.0.0.1:8080"
    tls = Settings(http_address="::", http_port=8443, gateway_tls_cert="c.pem", gateway_tls_key="k.pem")
    assert tls.http_url == "https://[::1]:8443"
    with pytest.raises(ValueError, match="http_port must be a port"):
        Settings(http_port=70000)


def test_its_channel_carries_no_credential_of_its_own_and_refuses_what_it_cannot_pass_on(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    token = tmp_path / "token"
    token.write_text("secret\n")
    assert forwarding_credentials(Settings(gateway_token_file=str(token))) is None   # plain text: no token sent
    assert forwarding_credentials(Settings(gateway_tls_ca=str(ca), gateway_token_file=str(token))) is not None
    with pytest.raises(ConfigError, match="gateway_tls_ca is not set"):
        forwarding_credentials(Settings(gateway_tls_cert="c.pem", gateway_tls_key="k.pem"))
    with pytest.raises(ConfigError, match="client certificates"):
        forwarding_credentials(Settings(gateway_tls_cert="c.pem", gateway_tls_key="k.pem", gateway_client_ca="ca.pem",
                                        gateway_tls_ca=str(ca)))
