-- The cloud's Ed25519 key for signing commands to gateways (contract/commands.py), when no
-- PW_COMMAND_KEY_FILE is configured: one row, created by the first process that needs it.
CREATE TABLE cloud_command_key (
    id          boolean PRIMARY KEY DEFAULT true CHECK (id),
    private_pem text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
