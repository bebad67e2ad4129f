-- Sigma placeholder values per tenant (`%Admins_Workstations%`), every version kept: the
-- current value of a name is its highest version; `vals` NULL marks a deletion.
CREATE TABLE placeholders (
    tenant_id BIGINT NOT NULL REFERENCES tenants(id),
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    vals TEXT,
    author TEXT NOT NULL,
    created_us BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, name, version)
);
