-- Price schedules are measured like power events (rules v2 pay what they deliver): which
-- scoring input a delivery counts in, `demand` (power events) or `price` (price schedules).
ALTER TABLE dr_deliveries ADD COLUMN response TEXT NOT NULL DEFAULT 'demand';
