-- Run once by the postgres image on an empty data volume (/docker-entrypoint-initdb.d/).
-- One database and one role per service: a service can reach only its own tables, as in
-- a cluster. The passwords are for the local compose stack only.
-- scripts/deploy_manifests.py --check fails if a registry service with migrations is missing.
CREATE ROLE paynow_account LOGIN PASSWORD 'paynow_account';
CREATE DATABASE paynow_account OWNER paynow_account;

CREATE ROLE paynow_auth LOGIN PASSWORD 'paynow_auth';
CREATE DATABASE paynow_auth OWNER paynow_auth;

CREATE ROLE paynow_merchant LOGIN PASSWORD 'paynow_merchant';
CREATE DATABASE paynow_merchant OWNER paynow_merchant;
