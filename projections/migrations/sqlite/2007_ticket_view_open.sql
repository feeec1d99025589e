-- The open tickets in received order: "all open" and "mine" (status <> 'closed') read a page
-- from here instead of scanning and sorting every ticket, and counting the open ones per
-- status reads only this index.
CREATE INDEX ticket_view_open ON ticket_view (received_at, number, status) WHERE status <> 'closed';
