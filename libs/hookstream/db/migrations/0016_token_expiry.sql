-- A token may expire: after expires_at it answers 401 like a revoked one (NULL: it lives until revoked).
ALTER TABLE api_tokens ADD COLUMN expires_at timestamptz;
