"""PostgreSQL: reserve and capture as stored functions, called in batches (app/ledger/stored.py).

They do exactly what Ledger._reserve and Ledger._capture do (same locks in the same order, same
rows, same journal entries); the ledger tests run both paths against the same expectations.
PL/pgSQL takes a fresh snapshot for each statement under READ COMMITTED, so the grants are read
after the account row is locked, as in the Python path. SQLite has no stored functions: nothing
to do there.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

RESERVE = r"""
CREATE OR REPLACE FUNCTION ledger_reserve(
    p_user text, p_amount bigint, p_operation text, p_feature text, p_deadline timestamptz,
    p_now timestamptz, p_month text, p_hold text,
    OUT outcome text, OUT available bigint, OUT held bigint, OUT balance bigint, OUT pending_from timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    acct record;
    g record;
    wanted bigint := p_amount;
    take bigint;
    ids text[] := '{}';
    takes bigint[] := '{}';
BEGIN
    balance := 0;
    SELECT a.welcomed, a.trial_month, a.next_expiry INTO acct
      FROM ledger_accounts a WHERE a.user_id = p_user FOR UPDATE;
    IF NOT FOUND OR NOT acct.welcomed
       OR (p_month IS NOT NULL AND coalesce(acct.trial_month, '') COLLATE "C" < p_month)
       OR acct.next_expiry <= p_now THEN
        outcome := 'unsettled';
        RETURN;
    END IF;
    FOR g IN SELECT gr.id, gr.remaining FROM ledger_grants gr
             WHERE gr.user_id = p_user AND gr.remaining > 0 AND gr.valid_from <= p_now
               AND (gr.expires_at IS NULL OR gr.expires_at > p_now)
             ORDER BY gr.expires_at NULLS LAST, gr.kind IN ('package', 'pay_as_you_go'), gr.valid_from,
                      gr.id COLLATE "C"
    LOOP
        balance := balance + g.remaining;
        IF wanted > 0 THEN
            take := least(g.remaining, wanted);
            ids := ids || g.id;
            takes := takes || take;
            wanted := wanted - take;
        END IF;
    END LOOP;
    IF wanted > 0 THEN
        outcome := 'short';
        SELECT min(gr.valid_from) INTO pending_from FROM ledger_grants gr
         WHERE gr.user_id = p_user AND gr.remaining > 0 AND gr.valid_from > p_now
           AND (gr.expires_at IS NULL OR gr.expires_at > p_now);
        RETURN;
    END IF;
    UPDATE ledger_accounts a SET available = a.available - p_amount, held = a.held + p_amount
     WHERE a.user_id = p_user RETURNING a.available, a.held INTO available, held;
    UPDATE ledger_grants gr SET remaining = gr.remaining - t.x, held = gr.held + t.x
      FROM unnest(ids, takes) AS t(gid, x) WHERE gr.id = t.gid;
    INSERT INTO ledger_holds (id, user_id, operation_id, feature, amount, parts, status, created_at, deadline)
    VALUES (p_hold, p_user, p_operation, p_feature, p_amount, cardinality(ids), 'held', p_now, p_deadline);
    INSERT INTO ledger_hold_parts (hold_id, grant_id, amount)
    SELECT p_hold, t.gid, t.x FROM unnest(ids, takes) AS t(gid, x);
    INSERT INTO ledger_entries (user_id, at, kind, amount, held_delta, balance_after, held_after, hold_id,
                                operation_id, feature)
    VALUES (p_user, p_now, 'reserve', -p_amount, p_amount, available, held, p_hold, p_operation, p_feature);
    outcome := 'held';
END
$$
"""

CAPTURE = r"""
CREATE OR REPLACE FUNCTION ledger_capture(
    p_hold text, p_now timestamptz,
    OUT outcome text, OUT user_id text, OUT operation_id text, OUT feature text, OUT amount bigint,
    OUT created_at timestamptz, OUT deadline timestamptz, OUT available bigint, OUT next_expiry timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    h record;
    touched int;
    held_after bigint;
BEGIN
    UPDATE ledger_holds x SET status = 'captured', reason = NULL, finished_at = p_now
     WHERE x.id = p_hold AND x.status = 'held'
    RETURNING x.user_id, x.operation_id, x.feature, x.amount, x.parts, x.created_at, x.deadline INTO h;
    IF NOT FOUND THEN
        outcome := 'finished';
        RETURN;
    END IF;
    UPDATE ledger_accounts a SET held = a.held - h.amount, captured = a.captured + h.amount
     WHERE a.user_id = h.user_id RETURNING a.available, a.held, a.next_expiry INTO available, held_after, next_expiry;
    UPDATE ledger_grants g SET held = g.held - p.amount, captured = g.captured + p.amount
      FROM ledger_hold_parts p WHERE p.hold_id = p_hold AND g.id = p.grant_id;
    GET DIAGNOSTICS touched = ROW_COUNT;
    IF touched <> h.parts THEN
        RAISE EXCEPTION 'hold % draws on % grants, found %', p_hold, h.parts, touched;
    END IF;
    INSERT INTO ledger_entries (user_id, at, kind, amount, held_delta, captured_delta, balance_after, held_after,
                                hold_id, operation_id, feature)
    VALUES (h.user_id, p_now, 'capture', 0, -h.amount, h.amount, available, held_after, p_hold, h.operation_id,
            h.feature);
    outcome := 'captured';
    user_id := h.user_id; operation_id := h.operation_id; feature := h.feature; amount := h.amount;
    created_at := h.created_at; deadline := h.deadline;
END
$$
"""

# Concurrent calls arrive together (app.ledger.stored.Batcher): one transaction takes them all,
# in user order so that two batches lock accounts in the same order and cannot deadlock. A
# reservation whose operation already has a hold is answered 'duplicate' without failing the rest
# (a duplicate racing in another batch still fails on the unique index, and the batcher then
# retries that batch's elements one by one).
RESERVE_MANY = r"""
CREATE OR REPLACE FUNCTION ledger_reserve_many(
    p_users text[], p_amounts bigint[], p_operations text[], p_features text[], p_deadlines timestamptz[],
    p_now timestamptz[], p_month text, p_holds text[])
RETURNS TABLE (i bigint, outcome text, available bigint, held bigint, balance bigint, pending_from timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    done record;
BEGIN
    FOR r IN SELECT * FROM unnest(p_users, p_amounts, p_operations, p_features, p_deadlines, p_now, p_holds)
                           WITH ORDINALITY AS t(u, amt, op, feature, deadline, at, hid, n)
             ORDER BY t.u COLLATE "C", t.n
    LOOP
        i := r.n;
        IF EXISTS (SELECT 1 FROM ledger_holds h WHERE h.operation_id = r.op) THEN
            outcome := 'duplicate'; available := NULL; held := NULL; balance := NULL; pending_from := NULL;
        ELSE
            SELECT * INTO done FROM ledger_reserve(r.u, r.amt, r.op, r.feature, r.deadline, r.at, p_month, r.hid);
            outcome := done.outcome; available := done.available; held := done.held;
            balance := done.balance; pending_from := done.pending_from;
        END IF;
        RETURN NEXT;
    END LOOP;
END
$$
"""

CAPTURE_MANY = r"""
CREATE OR REPLACE FUNCTION ledger_capture_many(p_holds text[], p_now timestamptz[])
RETURNS TABLE (i bigint, outcome text, user_id text, operation_id text, feature text, amount bigint,
               created_at timestamptz, deadline timestamptz, available bigint, next_expiry timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    done record;
BEGIN
    FOR r IN SELECT t.hid, t.at, t.n FROM unnest(p_holds, p_now) WITH ORDINALITY AS t(hid, at, n)
             LEFT JOIN ledger_holds h ON h.id = t.hid
             ORDER BY h.user_id COLLATE "C", t.n
    LOOP
        SELECT * INTO done FROM ledger_capture(r.hid, r.at);
        i := r.n; outcome := done.outcome; user_id := done.user_id; operation_id := done.operation_id;
        feature := done.feature; amount := done.amount; created_at := done.created_at;
        deadline := done.deadline; available := done.available; next_expiry := done.next_expiry;
        RETURN NEXT;
    END LOOP;
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for function in (RESERVE, CAPTURE, RESERVE_MANY, CAPTURE_MANY):
            op.get_bind().exec_driver_sql(function)  # as written: no bind parameters in PL/pgSQL


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION ledger_capture_many(text[], timestamptz[])")
        op.execute("DROP FUNCTION ledger_reserve_many(text[], bigint[], text[], text[], timestamptz[], timestamptz[], "
                   "text, text[])")
        op.execute("DROP FUNCTION ledger_capture(text, timestamptz)")
        op.execute("DROP FUNCTION ledger_reserve(text, bigint, text, text, timestamptz, timestamptz, text, text)")
