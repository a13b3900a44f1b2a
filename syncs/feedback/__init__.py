"""The feedback loop: platform delivery/engagement events -> raw.message_events (contract §1).

- signatures.py: verify Twilio's X-Twilio-Signature (twilio-python request_validator) and
  Lifeline's X-Lifeline-Signature webhook HMAC.
- mapping.py: pure functions from a platform's event to a message_events row.
- writer.py: idempotent append to raw.message_events (dedupe on message_id + event), via
  orchestration.load.
- cursors.py: per-source cursors in lifeline_state.feedback_cursors.
- receiver.py: the Starlette app receiving Twilio status callbacks and signed webhook posts.
- klaviyo_pull.py: pages Klaviyo's GET /api/events since the stored cursor.

Recipients are stored as the raw address: base_message_events normalises emails and phones itself,
exactly as for files loaded with `lifeline load`. Nothing here logs a recipient or a secret.
"""
