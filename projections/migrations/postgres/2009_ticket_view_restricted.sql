-- An erasure request met a legal hold: the ticket's processing is restricted (GDPR Art. 18),
-- so queues, counts and searches leave it out (auditors still reach it by number).
ALTER TABLE ticket_view ADD COLUMN restricted BOOLEAN NOT NULL DEFAULT FALSE;
