-- Due timers are claimed for a lease, as on PostgreSQL (one contract for
-- both stores): a claimed timer is not handed out again before the lease
-- ends, unless its row changes (a write clears the lease).
ALTER TABLE decisions ADD COLUMN timer_lease INTEGER;
