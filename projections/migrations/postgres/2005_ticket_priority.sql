-- ticket_view.priority: how urgent a ticket is (low, normal, high, urgent). Every ticket written
-- before priorities existed was normal, so the default is its true value, not a placeholder.
-- No index of its own: queues filter by status first (ticket_view_queue), and every index is
-- one more write for each of a ticket's events.
ALTER TABLE ticket_view ADD COLUMN priority TEXT NOT NULL DEFAULT 'normal';
