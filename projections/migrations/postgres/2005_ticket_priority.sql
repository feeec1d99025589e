-- ticket_view.priority: how urgent a ticket is (low, normal, high, urgent). Every ticket written
-- before priorities existed was normal, so the default is its true value, not a placeholder.
ALTER TABLE ticket_view ADD COLUMN priority TEXT NOT NULL DEFAULT 'normal';
CREATE INDEX ticket_view_priority ON ticket_view (priority, status);
