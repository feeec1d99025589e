-- The `intake` role (a mail server delivering customer e-mail).
ALTER TABLE api_tokens DROP CONSTRAINT api_tokens_role_check;
ALTER TABLE api_tokens ADD CONSTRAINT api_tokens_role_check
    CHECK (role IN ('agent', 'quality_manager', 'auditor', 'admin', 'intake'));
