"""Credential patterns botocore's debug output and endpoint errors really produce."""

from __future__ import annotations

import io
import logging

import pytest

from core import redact
from core.errors import AnalysisError

BOTOCORE_REQUEST = (
    "Sending http request: <AWSPreparedRequest stream_output=False, method=POST, "
    "url=https://rekognition.us-east-1.amazonaws.com/, headers={'X-Amz-Target': "
    "b'RekognitionService.DetectLabels', 'Authorization': b'AWS4-HMAC-SHA256 "
    "Credential=AKIAIOSFODNN7EXAMPLE/20240101/us-east-1/rekognition/aws4_request, "
    "SignedHeaders=host;x-amz-date;x-amz-security-token, Signature=0123456789abcdef0123456789"
    "abcdef', 'X-Amz-Security-Token': b'FwoGZXIvYXdzEXAMPLE//token+part=='}>")


@pytest.mark.parametrize("text, secrets", [
    (BOTOCORE_REQUEST, ["AKIAIOSFODNN7EXAMPLE", "FwoGZXIvYXdzEXAMPLE", "0123456789abcdef"]),
    ("CanonicalRequest:\nPOST\n/\n\nhost:s3.local\nx-amz-security-token:IQoJb3JpZ2luTOKEN\n",
     ["IQoJb3JpZ2luTOKEN"]),
    ("https://b.s3.amazonaws.com/k?X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F2024&"
     "X-Amz-Security-Token=IQoJb3JpZ2luTOKEN&X-Amz-Signature=deadbeefdeadbeef",
     ["AKIAIOSFODNN7EXAMPLE", "IQoJb3JpZ2luTOKEN", "deadbeefdeadbeef"]),
    ('Could not connect to the endpoint URL: "http://user:hunter2secret@host:9000/"',
     ["hunter2secret"]),
    ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", ["wJalrXUtnFEMI"]),
])
def test_credentials_are_masked(text, secrets):
    masked = redact.redact(text)
    assert redact.MASK in masked
    assert [s for s in secrets if s in masked] == []


def test_ordinary_text_is_left_alone():
    text = ("upload 3: stored as videos/ab/" + "ab" * 32 + "; endpoint http://127.0.0.1:9000/x, "
            "Authorization needed? no")
    assert redact.redact("upload 3: frames/3/0001.jpg done") == "upload 3: frames/3/0001.jpg done"
    assert "videos/ab/" + "ab" * 32 in redact.redact(text)
    assert redact.safe_endpoint("https://u:p@minio.local:9000/") == "https://minio.local:9000"


def test_registered_values_are_masked_anywhere():
    redact.register("opaque-value-from-a-vault-42", "short")
    assert redact.redact("x=opaque-value-from-a-vault-42;") == "x=***;"
    assert redact.redact("a short word") == "a short word"  # too short to be a secret


def test_formatter_masks_messages_arguments_and_tracebacks():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    redact.install([handler])
    log = logging.getLogger("test_redact.formatter")
    log.addHandler(handler)
    log.propagate = False
    log.setLevel(logging.DEBUG)
    try:
        log.debug("headers %s", {"X-Amz-Security-Token": b"FwoGZXIvYXdzARGUMENT"})
        try:
            raise RuntimeError("connect to http://me:pa55word@host/ failed")
        except RuntimeError:
            log.exception("upload %s: failed", 4)
    finally:
        log.removeHandler(handler)
    written = stream.getvalue()
    assert "FwoGZXIvYXdzARGUMENT" not in written and "pa55word" not in written
    assert written.startswith("DEBUG headers") and "RuntimeError" in written


def test_error_messages_are_masked_at_the_source():
    error = AnalysisError('Rekognition endpoint unreachable: "http://op:S3cretPass@10.0.0.1/"')
    assert "S3cretPass" not in error.message and "S3cretPass" not in str(error)
