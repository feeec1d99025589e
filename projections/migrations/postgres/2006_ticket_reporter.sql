-- ticket_view: who reported the ticket (shown in the console's queues) and one lower-cased text
-- of subject, name, address and phone that queue filters search. The new columns need every
-- ticket folded again, so the read model starts over from the first event: its rows and its
-- checkpoint go together (the runner refills it at start-up, from the log).
ALTER TABLE ticket_view ADD COLUMN reporter_name TEXT;
ALTER TABLE ticket_view ADD COLUMN reporter_address TEXT;
ALTER TABLE ticket_view ADD COLUMN search_text TEXT;
DELETE FROM ticket_view;
DELETE FROM projection_checkpoints WHERE name = 'ticket_view';
