"""The wire contract between edge and cloud: topics, the signed envelope, message bodies.

Both `edge` and `cloud` import this package and nothing else defines a topic string, a message
type or the bytes a signature covers. See docs/protocol.md for the human description.
"""

from contract.commands import (
    Command,
    CommandOrder,
    CommandRefused,
    open_command,
    seal_command,
)
from contract.confirmations import (
    STORED_COMMAND,
    decode_stored,
    seq_ranges,
    stored_body,
)
from contract.envelope import (
    SCHEMA_VERSION,
    Envelope,
    EnvelopeError,
    SignatureInvalid,
    canonical_bytes,
    open_envelope,
    seal,
    verify_signature,
)
from contract.keys import (
    load_private_key,
    load_public_key,
    private_key_pem,
    public_key_b64,
)
from contract.messages import (
    BODY_MODELS,
    CHANNEL_OF,
    AgentHealthBody,
    AlertBody,
    GatewayStatusBody,
    LotCountBody,
    MessageType,
    PresenceChangeBody,
    TagObservation,
    TagReadsBody,
    validate_body,
)
from contract.topics import (
    INGEST_SHARE_GROUP,
    TOPIC_ROOT,
    Channel,
    TopicAddress,
    cmd_topic,
    events_topic,
    ingest_subscription,
    parse_topic,
    status_topic,
    telemetry_topic,
    topic_for,
    validate_identifier,
)

__all__ = [
    "BODY_MODELS",
    "CHANNEL_OF",
    "INGEST_SHARE_GROUP",
    "SCHEMA_VERSION",
    "STORED_COMMAND",
    "TOPIC_ROOT",
    "AgentHealthBody",
    "AlertBody",
    "Channel",
    "Command",
    "CommandOrder",
    "CommandRefused",
    "Envelope",
    "EnvelopeError",
    "GatewayStatusBody",
    "LotCountBody",
    "MessageType",
    "PresenceChangeBody",
    "SignatureInvalid",
    "TagObservation",
    "TagReadsBody",
    "TopicAddress",
    "canonical_bytes",
    "cmd_topic",
    "decode_stored",
    "events_topic",
    "ingest_subscription",
    "load_private_key",
    "load_public_key",
    "open_command",
    "open_envelope",
    "parse_topic",
    "private_key_pem",
    "public_key_b64",
    "seal",
    "seal_command",
    "seq_ranges",
    "status_topic",
    "stored_body",
    "telemetry_topic",
    "topic_for",
    "validate_body",
    "validate_identifier",
    "verify_signature",
]
