-- One database per service: each owns its tables and no service reads another's.
-- Runs once, when the PostgreSQL volume is first initialised.
CREATE DATABASE branch_directory;
CREATE DATABASE branch_onsite;
CREATE DATABASE branch_remote;
CREATE DATABASE branch_vip;
CREATE DATABASE branch_research;
CREATE DATABASE branch_insight;
