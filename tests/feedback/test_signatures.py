"""Twilio's signature algorithm against twilio-python's own test vectors, incl. ports and bodySHA256."""
from __future__ import annotations

import hashlib

from syncs.feedback.signatures import twilio_signature, validate_twilio

TOKEN = "12345"
URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
PARAMS = [("CallSid", "CA1234567890ABCDE"), ("Caller", "+14158675309"), ("Digits", "1234"),
          ("From", "+14158675309"), ("To", "+18005551212")]
BODY = '{"property": "value", "boolean": true}'
BODY_HASH = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"


def test_form_signature_matches_twilio_python_vector():
    assert twilio_signature(URL, PARAMS, TOKEN) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    assert validate_twilio(URL, PARAMS, "RSOYDt4T1cUTdK1PDd93/VVr8B8=", TOKEN)
    assert not validate_twilio(URL, PARAMS, "RSOYDt4T1cUTdK1PDd93/VVr8B8=", "54321")
    assert not validate_twilio(URL, [*PARAMS[:-1], ("To", "+18005551213")], "RSOYDt4T1cUTdK1PDd93/VVr8B8=", TOKEN)
    assert not validate_twilio(URL, PARAMS, "", TOKEN)


def test_url_is_accepted_with_or_without_its_default_port():
    with_port = "https://mycompany.com:443/myapp.php?foo=1&bar=2"
    assert validate_twilio(with_port, PARAMS, "RSOYDt4T1cUTdK1PDd93/VVr8B8=", TOKEN)
    assert validate_twilio(URL, PARAMS, twilio_signature(with_port, PARAMS, TOKEN), TOKEN)


def test_json_body_is_covered_by_body_sha256():
    assert hashlib.sha256(BODY.encode()).hexdigest() == BODY_HASH
    url = f"{URL}&bodySHA256={BODY_HASH}"
    assert twilio_signature(url, [], TOKEN) == "a9nBmqA0ju/hNViExpshrM61xv4="
    assert validate_twilio(url, BODY, "a9nBmqA0ju/hNViExpshrM61xv4=", TOKEN)
    assert not validate_twilio(url, BODY + " ", "a9nBmqA0ju/hNViExpshrM61xv4=", TOKEN)
    assert not validate_twilio(URL, BODY, twilio_signature(URL, [], TOKEN), TOKEN)  # no bodySHA256 in the URL
