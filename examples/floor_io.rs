//! The I/O floor for `make bench`: the least a Lambda function can do to
//! answer `GET /users`. It loads the AWS configuration and builds the DynamoDB
//! client once, as the function does, then answers every event, whatever it
//! asks, with one Scan page of `USERS_TABLE` (`SCAN_LIMIT` items, 100 by
//! default) as plain JSON, written straight from the SDK's items: no routing,
//! no validation, no cursor, no size budget, no attribute order. The distance
//! between it and the function is what the function's own code costs. Built
//! with the same profile and features as the function binary;
//! `benches/bench/` drives it.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use lambda_http::{Body, Error, Request, Response, service_fn};
use serde::ser::{SerializeMap, SerializeSeq, SerializeStruct};
use serde::{Serialize, Serializer};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let table = std::env::var("USERS_TABLE")?;
    let limit: i32 = std::env::var("SCAN_LIMIT").map_or(Ok(100), |limit| limit.parse())?;
    // The function's own HTTP stack and AWS configuration.
    let aws = async_api::load_aws_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&aws);
    lambda_http::run_concurrent(service_fn(move |_request: Request| {
        let scan = dynamodb.scan().table_name(&table).limit(limit).send();
        async move {
            let output = scan.await?;
            let body = serde_json::to_string(&Page(output.items()))?;
            Ok::<_, Error>(
                Response::builder()
                    .status(200)
                    .header("content-type", "application/json")
                    .body(Body::Text(body))?,
            )
        }
    }))
    .await
}

/// `{"users": [...]}`.
struct Page<'a>(&'a [HashMap<String, AttributeValue>]);

impl Serialize for Page<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut page = serializer.serialize_struct("Page", 1)?;
        page.serialize_field("users", &Items(self.0))?;
        page.end()
    }
}

struct Items<'a>(&'a [HashMap<String, AttributeValue>]);

impl Serialize for Items<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut items = serializer.serialize_seq(Some(self.0.len()))?;
        for item in self.0 {
            items.serialize_element(&Item(item))?;
        }
        items.end()
    }
}

struct Item<'a>(&'a HashMap<String, AttributeValue>);

impl Serialize for Item<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in self.0 {
            map.serialize_entry(name, &Attribute(value))?;
        }
        map.end()
    }
}

/// The attribute types a user has; anything else is null.
struct Attribute<'a>(&'a AttributeValue);

impl Serialize for Attribute<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            AttributeValue::S(s) => serializer.serialize_str(s),
            AttributeValue::N(n) => match n.parse::<serde_json::Number>() {
                Ok(number) => number.serialize(serializer),
                Err(_) => serializer.serialize_unit(),
            },
            AttributeValue::Bool(b) => serializer.serialize_bool(*b),
            AttributeValue::M(map) => Item(map).serialize(serializer),
            AttributeValue::L(list) => {
                let mut seq = serializer.serialize_seq(Some(list.len()))?;
                for value in list {
                    seq.serialize_element(&Attribute(value))?;
                }
                seq.end()
            }
            _ => serializer.serialize_unit(),
        }
    }
}
