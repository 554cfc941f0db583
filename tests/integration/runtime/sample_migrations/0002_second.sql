CREATE TABLE sample_two (id integer PRIMARY KEY);
INSERT INTO sample_two VALUES (2);
