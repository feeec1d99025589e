"""Schemathesis hooks for .ci/run: raw e-mail bodies (message/rfc822) are sent as bytes, the way
binary bodies are, so that POST /api/v1/intake/email is fuzzed like every other route."""

import schemathesis

schemathesis.serializer.alias("message/rfc822", "application/octet-stream")
