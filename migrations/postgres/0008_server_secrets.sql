-- Secrets every process of one oracle shares: the key sessions (wallet sign-in) are
-- authenticated with, made once by whichever process starts first.
CREATE TABLE server_secrets (
    name   TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
