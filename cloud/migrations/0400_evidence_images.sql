-- Evidence images (plate crops, downscaled frames, label crops) uploaded by gateways.
-- Events carry only references (sha256, size, dimensions) inside their signed bodies, so the
-- signature pins the picture: the upload route stores bytes under their own SHA-256 and
-- refuses bytes whose hash is not the id they are sent under. Object storage can replace the
-- data column later; the references in events stay the same.
CREATE TABLE evidence_images (
    sha256 text PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    gateway_id text NOT NULL REFERENCES gateways (id),
    content_type text NOT NULL CHECK (content_type = 'image/jpeg'),
    bytes integer NOT NULL CHECK (bytes > 0 AND bytes <= 2097152),
    data bytea NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    CHECK (octet_length(data) = bytes)
);

CREATE INDEX evidence_images_gateway ON evidence_images (gateway_id, received_at);
