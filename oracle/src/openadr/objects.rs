//! The VTN's own objects in the database (migration 0011): reports posted by VENs,
//! subscriptions, VENs and their resources, one table. Every read goes to the database, so
//! several `serve` processes on one PostgreSQL database serve the same objects.

use serde_json::{json, Value};
use sqlx::Row;

use crate::store::{Store, StoreError};
use ovpp_wire::dispatch::event::rfc3339;

/// The OpenADR object types kept here (programs and events live with dispatch).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Report,
    Subscription,
    Ven,
    Resource,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Report => "REPORT",
            Kind::Subscription => "SUBSCRIPTION",
            Kind::Ven => "VEN",
            Kind::Resource => "RESOURCE",
        }
    }

    /// Id prefix: ids say what they name.
    fn prefix(self) -> &'static str {
        match self {
            Kind::Report => "rpt",
            Kind::Subscription => "sub",
            Kind::Ven => "ven",
            Kind::Resource => "res",
        }
    }
}

/// One stored object.
#[derive(Clone, Debug)]
pub struct Object {
    pub id: String,
    pub kind: Kind,
    pub owner: String,
    pub parent: Option<String>,
    pub name: String,
    pub program_id: Option<String>,
    pub event_id: Option<String>,
    /// As posted, without the VTN-provisioned fields.
    pub body: Value,
    pub created: i64,
    pub modified: i64,
}

impl Object {
    pub fn new_id(kind: Kind) -> String {
        format!("{}-{:016x}", kind.prefix(), rand::random::<u64>())
    }

    /// The object as served: its body with `id`, `objectType`, the times and, for a
    /// resource, its `venID`.
    pub fn to_json(&self) -> Value {
        let mut out = self.body.clone();
        out["id"] = json!(self.id);
        out["objectType"] = json!(self.kind.name());
        out["createdDateTime"] = json!(rfc3339(self.created));
        out["modificationDateTime"] = json!(rfc3339(self.modified));
        if self.kind == Kind::Resource {
            out["venID"] = json!(self.parent);
        }
        out
    }
}

/// A write refused by the table's constraints.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("the name is taken")]
    NameTaken,
    #[error("the object is gone")]
    Gone,
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn write_error(e: sqlx::Error) -> WriteError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => WriteError::NameTaken,
        _ => WriteError::Store(e.into()),
    }
}

/// Selects objects of one kind; `None` fields select everything.
#[derive(Default)]
pub struct Filter<'a> {
    pub owner: Option<&'a str>,
    pub parent: Option<&'a str>,
    pub name: Option<&'a str>,
    pub program_id: Option<&'a str>,
    pub event_id: Option<&'a str>,
}

const COLUMNS: &str = "id, object_type, owner, parent, name, program_id, event_id, body, created_at, modified_at";

fn from_row(r: &sqlx::any::AnyRow) -> Result<Object, StoreError> {
    let kind = match r.try_get::<String, _>("object_type")?.as_str() {
        "REPORT" => Kind::Report,
        "SUBSCRIPTION" => Kind::Subscription,
        "VEN" => Kind::Ven,
        "RESOURCE" => Kind::Resource,
        other => return Err(StoreError::Corrupt { table: "openadr_objects", detail: format!("object type {other:?}") }),
    };
    let body = r.try_get::<String, _>("body")?;
    Ok(Object {
        id: r.try_get("id")?,
        kind,
        owner: r.try_get("owner")?,
        parent: r.try_get("parent")?,
        name: r.try_get("name")?,
        program_id: r.try_get("program_id")?,
        event_id: r.try_get("event_id")?,
        body: serde_json::from_str(&body).map_err(|e| StoreError::Corrupt { table: "openadr_objects", detail: e.to_string() })?,
        created: r.try_get("created_at")?,
        modified: r.try_get("modified_at")?,
    })
}

impl Store {
    /// Inserts objects in one transaction: all or none (a VEN with its resources).
    pub async fn insert_objects(&self, objects: &[Object]) -> Result<(), WriteError> {
        let mut tx = self.writes.begin().await.map_err(write_error)?;
        for o in objects {
            sqlx::query(
                "INSERT INTO openadr_objects (id, object_type, owner, parent, name, program_id, event_id, body, created_at, modified_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(&o.id)
            .bind(o.kind.name())
            .bind(&o.owner)
            .bind(&o.parent)
            .bind(&o.name)
            .bind(&o.program_id)
            .bind(&o.event_id)
            .bind(o.body.to_string())
            .bind(o.created)
            .bind(o.modified)
            .execute(&mut *tx)
            .await
            .map_err(write_error)?;
        }
        tx.commit().await.map_err(write_error)?;
        Ok(())
    }

    /// Rewrites an object's body, name and references (its id, kind, owner and parent stay).
    pub async fn update_object(&self, o: &Object) -> Result<(), WriteError> {
        let done =
            sqlx::query("UPDATE openadr_objects SET name = $1, program_id = $2, event_id = $3, body = $4, modified_at = $5 WHERE id = $6")
                .bind(&o.name)
                .bind(&o.program_id)
                .bind(&o.event_id)
                .bind(o.body.to_string())
                .bind(o.modified)
                .bind(&o.id)
                .execute(&self.writes)
                .await
                .map_err(write_error)?;
        // Deleted by another request meanwhile.
        if done.rows_affected() == 0 {
            return Err(WriteError::Gone);
        }
        Ok(())
    }

    /// Deletes an object and the objects it is the parent of (a VEN's resources).
    pub async fn delete_object(&self, id: &str) -> Result<(), StoreError> {
        let mut tx = self.writes.begin().await?;
        sqlx::query("DELETE FROM openadr_objects WHERE parent = $1").bind(id).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM openadr_objects WHERE id = $1").bind(id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn object(&self, kind: Kind, id: &str) -> Result<Option<Object>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM openadr_objects WHERE id = $1 AND object_type = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).bind(kind.name()).fetch_optional(&self.pool).await?;
        row.as_ref().map(from_row).transpose()
    }

    /// The objects of `kind` that `filter` selects, oldest first.
    pub async fn objects(&self, kind: Kind, filter: &Filter<'_>) -> Result<Vec<Object>, StoreError> {
        // Each condition holds when its parameter is NULL, so one statement serves every filter.
        let sql = format!(
            "SELECT {COLUMNS} FROM openadr_objects WHERE object_type = $1 \
             AND ($2 IS NULL OR owner = $2) AND ($3 IS NULL OR parent = $3) AND ($4 IS NULL OR name = $4) \
             AND ($5 IS NULL OR program_id = $5) AND ($6 IS NULL OR event_id = $6) ORDER BY created_at, id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(kind.name())
            .bind(filter.owner)
            .bind(filter.parent)
            .bind(filter.name)
            .bind(filter.program_id)
            .bind(filter.event_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(from_row).collect()
    }
}
