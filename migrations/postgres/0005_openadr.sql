-- OpenADR 3 objects the VTN keeps beside programs and events: reports posted by VENs,
-- subscriptions, VENs and their resources. `body` is the object as posted (JSON, without
-- the VTN-provisioned fields); the other columns are what queries and access select on.
CREATE TABLE openadr_objects (
    id          TEXT PRIMARY KEY,
    object_type TEXT NOT NULL,
    -- the OAuth2 client (or `grid-operator`) that created it
    owner       TEXT NOT NULL,
    -- a resource's VEN
    parent      TEXT,
    -- venName, resourceName, or a report's or subscription's clientName
    name        TEXT NOT NULL,
    program_id  TEXT,
    event_id    TEXT,
    body        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    modified_at BIGINT NOT NULL
);
-- venName is unique among a client's VENs (not across clients: no client can take
-- another's name, or learn it exists), resourceName within its VEN.
CREATE UNIQUE INDEX openadr_unique_names ON openadr_objects (object_type, parent, name) WHERE object_type = 'RESOURCE';
CREATE UNIQUE INDEX openadr_unique_vens ON openadr_objects (object_type, owner, name) WHERE object_type = 'VEN';
CREATE INDEX openadr_by_type ON openadr_objects (object_type, created_at, id);

ALTER TABLE grid_programs ADD COLUMN modified_at BIGINT;
