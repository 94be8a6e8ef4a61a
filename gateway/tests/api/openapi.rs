//! `/openapi.json` describes every route the gateway serves, and `/docs`
//! shows it with assets served by the gateway itself.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::{TestApp, json_of, spawn_app};

/// Every method the API could use; the document's path items use them in
/// lowercase.
const METHODS: [Method; 5] = [Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE];

async fn openapi_document(app: &TestApp) -> Value {
    let (status, document) = json_of(app.http.get(app.url("/openapi.json")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    document
}

/// `(method, path template)` of every operation in the document.
fn operations(document: &Value) -> Vec<(Method, String)> {
    let mut operations = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in METHODS {
            if item.get(method.as_str().to_ascii_lowercase()).is_some() {
                operations.push((method, path.clone()));
            }
        }
    }
    operations
}

fn operation<'a>(document: &'a Value, method: &Method, path: &str) -> &'a Value {
    &document["paths"][path][method.as_str().to_ascii_lowercase()]
}

/// A concrete path for a template: every `{param}` is a valid id.
fn concrete(path: &str) -> String {
    path.replace("{book_id}", "1")
}

#[tokio::test]
async fn openapi_json_is_an_openapi_3_1_document_with_the_token_security_schemes() {
    let app = spawn_app().await;

    let document = openapi_document(&app).await;

    assert!(document["openapi"].as_str().unwrap().starts_with("3.1."), "{}", document["openapi"]);
    assert_eq!(document["info"]["title"], "Bookstore REST API");
    let schemes = &document["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["type"], "http");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["x-access-tokens"]["type"], "apiKey");
    assert_eq!(schemes["x-access-tokens"]["in"], "header");
    assert_eq!(schemes["x-access-tokens"]["name"], "x-access-tokens");
    assert_eq!(schemes["basic"]["scheme"], "basic");
    assert_eq!(operation(&document, &Method::POST, "/login")["security"], serde_json::json!([{"basic": []}]));
}

#[tokio::test]
async fn the_document_lists_the_tutorials_routes_and_field_names() {
    let app = spawn_app().await;

    let document = openapi_document(&app).await;

    let documented: BTreeSet<String> =
        operations(&document).iter().map(|(method, path)| format!("{method} {path}")).collect();
    for expected in [
        "POST /register",
        "POST /login",
        "GET /users",
        "POST /book",
        "GET /books",
        "GET /books/{book_id}",
        "PUT /books/{book_id}",
        "PATCH /books/{book_id}",
        "DELETE /books/{book_id}",
        "GET /healthz",
        "GET /readyz",
    ] {
        assert!(documented.contains(expected), "{expected} is not documented: {documented:?}");
    }
    let schemas = &document["components"]["schemas"];
    for (schema, fields) in [
        ("BookBody", &["Author", "Publisher", "book_prize", "name"][..]),
        ("BookJson", &["Author", "Publisher", "book_prize", "id", "name"]),
        ("RegisterBody", &["name", "password"]),
        ("ErrorBody", &["detail", "message"]),
    ] {
        let properties: Vec<&String> = schemas[schema]["properties"].as_object().unwrap().keys().collect();
        assert_eq!(properties, fields, "{schema}");
    }
    assert_eq!(schemas["ErrorBody"]["required"], serde_json::json!(["message"]));
}

/// Routes are registered only through `utoipa_axum::routes!`, which takes
/// each path and method from the handler's documentation; this keeps it so.
#[test]
fn routes_are_registered_only_through_the_documenting_macro() {
    for (file, source) in [
        ("src/routes.rs", include_str!("../../src/routes.rs")),
        ("src/app.rs", include_str!("../../src/app.rs")),
        ("src/openapi.rs", include_str!("../../src/openapi.rs")),
    ] {
        for undocumented in [".route(", ".route_service(", ".nest(", ".nest_service(", "Router::new()"] {
            assert!(!source.contains(undocumented), "{file} registers a route with `{undocumented}`: use `routes!`");
        }
    }
}

#[tokio::test]
async fn every_documented_operation_is_served_and_answers_a_documented_status() {
    let app = spawn_app().await;
    let document = openapi_document(&app).await;

    for (method, path) in operations(&document) {
        // No token and no body: each route answers with one of its errors
        // (or, for health, success), never the router's fallbacks.
        let response = app.http.request(method.clone(), app.url(&concrete(&path))).send().await.unwrap();

        let (status, body) = json_of(response).await;
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}: {body}");
        assert!(
            !body["message"].as_str().unwrap_or_default().starts_with("no route for"),
            "{method} {path} is documented but not served"
        );
        let documented = &operation(&document, &method, &path)["responses"][status.as_str()];
        assert!(documented.is_object(), "{method} {path} answered {status}, which it does not document");
    }
}

#[tokio::test]
async fn documented_paths_serve_no_undocumented_method() {
    let app = spawn_app().await;
    let document = openapi_document(&app).await;

    for (path, item) in document["paths"].as_object().unwrap() {
        for method in METHODS {
            if item.get(method.as_str().to_ascii_lowercase()).is_some() {
                continue;
            }
            let response = app.http.request(method.clone(), app.url(&concrete(path))).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED, "{method} {path} is served, undocumented");
        }
    }
}

#[tokio::test]
async fn every_error_is_documented_with_the_json_error_shape() {
    let app = spawn_app().await;
    let document = openapi_document(&app).await;
    let error_ref = "#/components/schemas/ErrorBody";

    for (method, path) in operations(&document) {
        let operation = operation(&document, &method, &path);
        let responses = operation["responses"].as_object().unwrap();
        for (status, response) in responses {
            let schema = &response["content"]["application/json"]["schema"];
            assert!(schema.is_object(), "{method} {path} {status} has no JSON body");
            if !status.starts_with('2') {
                assert_eq!(schema["$ref"], error_ref, "{method} {path} {status}");
            }
            assert!(response["headers"]["x-request-id"].is_object(), "{method} {path} {status}: no x-request-id");
        }
        let has = |status: &str| responses.contains_key(status);
        for status in ["431", "503"] {
            assert!(has(status), "{method} {path} does not document the middleware's {status}");
        }
        if path != "/healthz" && path != "/readyz" {
            for status in ["429", "500", "503", "504"] {
                assert!(has(status), "{method} {path} does not document the upstream failure {status}");
            }
        }
        for status in ["429", "503"] {
            if has(status) {
                assert!(responses[status]["headers"]["retry-after"].is_object(), "{method} {path} {status}");
            }
        }
        if operation["security"].to_string().contains("bearer") {
            assert!(has("401"), "{method} {path} takes a token but does not document 401");
            assert_eq!(
                operation["security"],
                serde_json::json!([{"bearer": []}, {"x-access-tokens": []}]),
                "{method} {path}: either header carries the token"
            );
        }
        if operation["requestBody"].is_object() {
            for status in ["400", "413", "415"] {
                assert!(has(status), "{method} {path} takes a body but does not document {status}");
            }
        }
    }
}

#[tokio::test]
async fn the_docs_page_is_served_by_the_gateway_with_no_external_url() {
    let app = spawn_app().await;

    let response = app.http.get(app.url("/docs")).send().await.unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let page_url = response.url().clone();
    let html = response.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    let assets = asset_references(&html);
    assert!(assets.iter().any(|asset| asset.ends_with("swagger-ui-bundle.js")), "{assets:?}");
    for asset in assets {
        assert!(!asset.contains("//"), "{asset} is not served by the gateway");
        let asset_url = page_url.join(&asset).unwrap();
        let response = app.http.get(asset_url.clone()).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{asset_url}");
        if asset.ends_with("swagger-initializer.js") {
            let script = response.text().await.unwrap();
            assert!(script.contains("/openapi.json"), "{script}");
            assert!(!script.contains("http://") && !script.contains("https://"), "{script}");
        }
    }
}

/// The `src="..."` and `href="..."` values of an HTML page.
fn asset_references(html: &str) -> Vec<String> {
    let mut references = Vec::new();
    for attribute in ["src=\"", "href=\""] {
        for (start, _) in html.match_indices(attribute) {
            let rest = &html[start + attribute.len()..];
            references.push(rest[..rest.find('"').unwrap()].to_owned());
        }
    }
    references
}
