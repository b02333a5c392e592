"""The token endpoints through the official credential libraries:
azure-identity's ClientSecretCredential and CertificateCredential (MSAL
underneath, which reads the tenant's OpenID configuration first), MSAL's
instance discovery, and google-auth's authorized-user credentials (what
`gcloud auth application-default login` leaves behind).

The mock binary comes from SKYFLEET_MOCK_BIN (tests-python/run.sh sets it);
it runs with --tls (MSAL only talks https) and its certificate is trusted
through REQUESTS_CA_BUNDLE. The certificate app's key and certificate are
made here and registered through the --config file.
"""

import datetime
import json
import os
import subprocess
import tempfile
import time

import google.auth.exceptions
import google.auth.transport.requests
import msal
import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import CertificateCredential, ClientSecretCredential
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from google.oauth2.credentials import Credentials

TENANT = "5e1f0000-0000-4000-8000-00000000feed"
SECRET_APP = "a1a1a1a1-0000-4000-8000-000000000001"
CERT_APP = "b2b2b2b2-0000-4000-8000-000000000002"
SECRET = "py-secret-value"
ARM = "https://management.azure.com/.default"
GOOGLE_CLIENT = "py-client.apps.googleusercontent.com"
GOOGLE_SECRET = "py-google-secret"
REFRESH = "1//py-refresh-token"


def make_cert(path):
    """An RSA key and a self-signed certificate, both in one PEM file (as
    CertificateCredential takes them); returns the certificate's PEM."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "skyfleet-test-app")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    with open(path, "w") as f:
        f.write(key_pem + cert_pem)
    return cert_pem


class Mock:
    def __init__(self, url, ca, cert_path, other_cert_path):
        self.url = url
        self.authority = url[len("https://"):]
        self.ca = ca
        self.cert_path = cert_path
        self.other_cert_path = other_cert_path


@pytest.fixture(scope="module")
def mock():
    binary = os.environ.get("SKYFLEET_MOCK_BIN")
    if not binary or not os.access(binary, os.X_OK):
        pytest.fail("SKYFLEET_MOCK_BIN must name the skyfleet-mock binary")
    with tempfile.TemporaryDirectory() as tmp:
        cert_path = os.path.join(tmp, "app.pem")
        cert_pem = make_cert(cert_path)
        other_cert_path = os.path.join(tmp, "other.pem")
        make_cert(other_cert_path)
        config = os.path.join(tmp, "mock.json")
        with open(config, "w") as f:
            json.dump(
                {
                    "azure": {
                        "entra_apps": [
                            {"tenant": TENANT, "client_id": SECRET_APP, "client_secret": SECRET},
                            {"tenant": TENANT, "client_id": CERT_APP, "certificate_pem": cert_pem},
                        ]
                    },
                    "gcp": {
                        "authorized_users": [
                            {
                                "client_id": GOOGLE_CLIENT,
                                "client_secret": GOOGLE_SECRET,
                                "refresh_token": REFRESH,
                            }
                        ]
                    },
                },
                f,
            )
        ca = os.path.join(tmp, "ca.pem")
        proc = subprocess.Popen(
            [binary, "--listen", "127.0.0.1:0", "--tls", "--cert-out", ca, "--config", config],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        old = os.environ.get("REQUESTS_CA_BUNDLE")
        try:
            url = proc.stdout.readline().strip()
            assert url.startswith("https://127.0.0.1:"), url
            assert os.path.exists(ca), "the mock wrote no certificate"
            os.environ["REQUESTS_CA_BUNDLE"] = ca
            yield Mock(url, ca, cert_path, other_cert_path)
        finally:
            if old is None:
                os.environ.pop("REQUESTS_CA_BUNDLE", None)
            else:
                os.environ["REQUESTS_CA_BUNDLE"] = old
            proc.terminate()
            proc.wait(timeout=10)


def azure_kwargs(mock):
    # The mock is not a Microsoft host: without this, MSAL would ask
    # login.microsoftonline.com whether it is a known instance.
    return {"authority": mock.authority, "disable_instance_discovery": True, "connection_verify": mock.ca}


def test_client_secret_credential_gets_a_token(mock):
    cred = ClientSecretCredential(TENANT, SECRET_APP, SECRET, **azure_kwargs(mock))
    token = cred.get_token(ARM)
    assert token.token.count(".") == 2
    assert token.expires_on > time.time() + 3000


def test_a_wrong_client_secret_is_aadsts7000215(mock):
    cred = ClientSecretCredential(TENANT, SECRET_APP, "not-the-secret", **azure_kwargs(mock))
    with pytest.raises(ClientAuthenticationError) as err:
        cred.get_token(ARM)
    assert "AADSTS7000215" in str(err.value)


def test_an_unknown_app_is_aadsts700016(mock):
    cred = ClientSecretCredential(TENANT, "c0c0c0c0-0000-4000-8000-000000000003", SECRET, **azure_kwargs(mock))
    with pytest.raises(ClientAuthenticationError) as err:
        cred.get_token(ARM)
    assert "AADSTS700016" in str(err.value)


def test_certificate_credential_gets_a_token(mock):
    cred = CertificateCredential(TENANT, CERT_APP, certificate_path=mock.cert_path, **azure_kwargs(mock))
    token = cred.get_token(ARM)
    assert token.token.count(".") == 2
    assert token.expires_on > time.time() + 3000


def test_an_unregistered_certificate_is_aadsts700027(mock):
    cred = CertificateCredential(TENANT, CERT_APP, certificate_path=mock.other_cert_path, **azure_kwargs(mock))
    with pytest.raises(ClientAuthenticationError) as err:
        cred.get_token(ARM)
    assert "AADSTS700027" in str(err.value)


def test_msal_instance_discovery_against_the_mock(mock):
    # MSAL's own instance discovery, pointed at the mock instead of
    # login.microsoftonline.com.
    session = requests.Session()
    session.verify = mock.ca
    app = msal.ConfidentialClientApplication(
        SECRET_APP,
        client_credential=SECRET,
        authority="{}/{}".format(mock.url, TENANT),
        instance_discovery="{}/common/discovery/instance".format(mock.url),
        http_client=session,
    )
    result = app.acquire_token_for_client(scopes=[ARM])
    assert "access_token" in result, result
    assert app.authority.token_endpoint == "{}/{}/oauth2/v2.0/token".format(mock.url, TENANT)


def google_credentials(mock, secret=GOOGLE_SECRET, refresh_token=REFRESH):
    return Credentials(
        token=None,
        refresh_token=refresh_token,
        client_id=GOOGLE_CLIENT,
        client_secret=secret,
        token_uri="{}/token".format(mock.url),
    )


def test_google_authorized_user_refreshes_and_opens_compute(mock):
    creds = google_credentials(mock)
    creds.refresh(google.auth.transport.requests.Request())
    assert creds.token.startswith("ya29.mock-")
    assert creds.valid
    url = "{}/compute/v1/projects/py-project/zones/us-central1-a/instances".format(mock.url)
    assert requests.get(url, verify=mock.ca).status_code == 401
    resp = requests.get(url, headers={"Authorization": "Bearer " + creds.token}, verify=mock.ca)
    assert resp.status_code == 200, resp.text


def test_google_bad_refresh_token_is_invalid_grant(mock):
    creds = google_credentials(mock, refresh_token="1//revoked")
    with pytest.raises(google.auth.exceptions.RefreshError) as err:
        creds.refresh(google.auth.transport.requests.Request())
    assert "invalid_grant" in str(err.value)


def test_google_wrong_client_secret_is_invalid_client(mock):
    creds = google_credentials(mock, secret="wrong")
    with pytest.raises(google.auth.exceptions.RefreshError) as err:
        creds.refresh(google.auth.transport.requests.Request())
    assert "invalid_client" in str(err.value)
