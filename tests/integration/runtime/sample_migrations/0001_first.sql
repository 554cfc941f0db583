-- No IF NOT EXISTS: applying this file twice fails.
CREATE TABLE sample_one (id integer PRIMARY KEY);
