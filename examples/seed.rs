//! `make seed`: creates the two tables when they do not exist (local DynamoDB;
//! on AWS the SAM stack owns them) and writes the sample users. Running it
//! again changes nothing: the users are written with the same ids.
//!
//! Reads `USERS_TABLE`, `TASKS_TABLE` and the usual AWS variables
//! (`AWS_ENDPOINT_URL_DYNAMODB` for a local endpoint).

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, Projection, ProjectionType, PutRequest, ScalarAttributeType, TimeToLiveSpecification,
    WriteRequest,
};

/// The sample users: (name, email handle); ids are u01, u02, …
const USERS: &[(&str, &str)] = &[
    ("Ada Lovelace", "ada"),
    ("Alan Turing", "alan"),
    ("Grace Hopper", "grace"),
    ("Edsger Dijkstra", "edsger"),
    ("Barbara Liskov", "barbara"),
    ("Donald Knuth", "donald"),
    ("Margaret Hamilton", "margaret"),
    ("John McCarthy", "john"),
    ("Frances Allen", "frances"),
    ("Ken Thompson", "ken"),
    ("Dennis Ritchie", "dennis"),
    ("Radia Perlman", "radia"),
    ("Tony Hoare", "tony"),
    ("Leslie Lamport", "leslie"),
    ("Shafi Goldwasser", "shafi"),
    ("Niklaus Wirth", "niklaus"),
    ("Adele Goldberg", "adele"),
    ("Robin Milner", "robin"),
    ("Hedy Lamarr", "hedy"),
    ("Claude Shannon", "claude"),
    ("Katherine Johnson", "katherine"),
    ("John Backus", "backus"),
    ("Sophie Wilson", "sophie"),
    ("Jean Sammet", "jean"),
    ("Guido van Rossum", "guido"),
];

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let users_table = std::env::var("USERS_TABLE").map_err(|_| "USERS_TABLE is required")?;
    let tasks_table = std::env::var("TASKS_TABLE").map_err(|_| "TASKS_TABLE is required")?;
    let client = Client::new(&async_api::load_aws_config().await);

    ensure_table(&client, &users_table, "id").await?;
    if ensure_table(&client, &tasks_table, "task_id").await? {
        // dynalite has no TTL API; real DynamoDB and DynamoDB Local do.
        let ttl = client
            .update_time_to_live()
            .table_name(&tasks_table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name("expires_at")
                    .build()?,
            )
            .send()
            .await;
        if ttl.is_err() {
            println!("note: this DynamoDB has no TTL API; task records will not expire");
        }
    }

    let requests: Vec<WriteRequest> = USERS
        .iter()
        .enumerate()
        .map(|(i, (name, handle))| {
            let item = HashMap::from([
                ("id".to_owned(), AttributeValue::S(format!("u{:02}", i + 1))),
                ("name".to_owned(), AttributeValue::S((*name).to_owned())),
                (
                    "email".to_owned(),
                    AttributeValue::S(format!("{handle}@example.com")),
                ),
            ]);
            Ok(WriteRequest::builder()
                .put_request(PutRequest::builder().set_item(Some(item)).build()?)
                .build())
        })
        .collect::<Result<_, aws_sdk_dynamodb::error::BuildError>>()?;
    for chunk in requests.chunks(25) {
        let mut pending = HashMap::from([(users_table.clone(), chunk.to_vec())]);
        while !pending.is_empty() {
            let output = client
                .batch_write_item()
                .set_request_items(Some(pending))
                .send()
                .await?;
            pending = output.unprocessed_items.unwrap_or_default();
        }
    }
    println!("seeded {} users into {users_table}", USERS.len());
    Ok(())
}

/// Creates `table` with string partition key `key` unless it exists; says whether it created it.
async fn ensure_table(
    client: &Client,
    table: &str,
    key: &str,
) -> Result<bool, Box<dyn std::error::Error>> {
    if let Ok(existing) = client.describe_table().table_name(table).send().await {
        let indexed = existing
            .table()
            .map(|t| t.global_secondary_indexes())
            .unwrap_or_default()
            .iter()
            .any(|index| index.index_name() == Some(async_api::tasks::store::OWNER_INDEX));
        if key == "task_id" && !indexed {
            eprintln!(
                "table {table} has no index {}: GET /tasks needs it; delete the table (or restart `make dev`) to have it made",
                async_api::tasks::store::OWNER_INDEX
            );
        }
        return Ok(false);
    }
    let create = client.create_table();
    // The tasks table's index by owner, which GET /tasks queries (template.yaml makes the same).
    let create = if key == "task_id" {
        create
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("owner")
                    .attribute_type(ScalarAttributeType::S)
                    .build()?,
            )
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("created_ms")
                    .attribute_type(ScalarAttributeType::N)
                    .build()?,
            )
            .global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(async_api::tasks::store::OWNER_INDEX)
                    .key_schema(
                        KeySchemaElement::builder()
                            .attribute_name("owner")
                            .key_type(KeyType::Hash)
                            .build()?,
                    )
                    .key_schema(
                        KeySchemaElement::builder()
                            .attribute_name("created_ms")
                            .key_type(KeyType::Range)
                            .build()?,
                    )
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::All)
                            .build(),
                    )
                    .build()?,
            )
    } else {
        create
    };
    create
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(key)
                .attribute_type(ScalarAttributeType::S)
                .build()?,
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name(key)
                .key_type(KeyType::Hash)
                .build()?,
        )
        .send()
        .await?;
    // Wait until the table is ACTIVE (dynalite: at once; DynamoDB: seconds).
    for _ in 0..60 {
        let status = client.describe_table().table_name(table).send().await?;
        if status
            .table()
            .and_then(|t| t.table_status())
            .map(|s| s.as_str())
            == Some("ACTIVE")
        {
            println!("created table {table}");
            return Ok(true);
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    Err(format!("table {table} did not become ACTIVE").into())
}
