//! Discovery (RFC 7644 §4): `/ServiceProviderConfig`, `/ResourceTypes`, `/Schemas`.

use super::{Service, eq};
use crate::error::{Error, Result};
use crate::message::ListResponse;
use crate::resource::{Extensions, Meta};
use crate::schema::{
    BulkConfig, FilterConfig, PaginationConfig, ResourceType, Schema, ServiceProviderConfig,
    Supported, urn,
};
use crate::store::Store;

use super::request::Response;

impl<S: Store> Service<S> {
    /// What this service supports, as `/ServiceProviderConfig` serves it (RFC 7643 §5).
    pub fn service_provider_config(&self) -> ServiceProviderConfig {
        let c = &self.config;
        ServiceProviderConfig {
            schemas: vec![urn::SERVICE_PROVIDER_CONFIG.to_owned()],
            documentation_uri: c.documentation_uri.clone(),
            patch: Supported { supported: true },
            bulk: BulkConfig {
                supported: c.bulk_max_operations > 0,
                max_operations: c.bulk_max_operations as u64,
                max_payload_size: c.bulk_max_payload_bytes as u64,
            },
            filter: FilterConfig {
                supported: true,
                max_results: c.max_results as u64,
            },
            change_password: Supported {
                supported: c.change_password,
            },
            sort: Supported { supported: true },
            etag: Supported { supported: true },
            // Cursors are positions, not server state: they do not expire.
            pagination: Some(PaginationConfig {
                cursor: true,
                index: true,
                default_pagination_method: Some("index".to_owned()),
                default_page_size: Some(c.max_results as u64),
                max_page_size: Some(c.max_results as u64),
                cursor_timeout: None,
            }),
            authentication_schemes: c.authentication_schemes.clone(),
            meta: Some(Meta {
                resource_type: Some("ServiceProviderConfig".to_owned()),
                location: Some(self.location("/ServiceProviderConfig")),
                ..Meta::default()
            }),
            extensions: Extensions::new(),
        }
    }

    fn resource_type_doc(&self, rt: &ResourceType) -> ResourceType {
        let mut rt = rt.clone();
        rt.schemas = vec![urn::RESOURCE_TYPE.to_owned()];
        if rt.id.is_none() {
            rt.id = Some(rt.name.clone());
        }
        rt.meta = Some(Meta {
            resource_type: Some("ResourceType".to_owned()),
            location: Some(self.location(&format!("/ResourceTypes/{}", rt.name))),
            ..Meta::default()
        });
        rt
    }

    fn schema_doc(&self, schema: &Schema) -> Schema {
        let mut schema = schema.clone();
        schema.schemas = vec![urn::SCHEMA.to_owned()];
        schema.meta = Some(Meta {
            resource_type: Some("Schema".to_owned()),
            location: Some(self.location(&format!("/Schemas/{}", schema.id))),
            ..Meta::default()
        });
        schema
    }

    fn list_of<T: serde::Serialize>(items: Vec<T>) -> Response {
        let n = items.len() as u64;
        Response::json(200, &ListResponse::new(items, n, 1))
    }

    pub(super) fn service_provider_config_response(&self) -> Response {
        Response::json(200, &self.service_provider_config())
    }

    pub(super) fn resource_types_response(&self) -> Response {
        let items: Vec<ResourceType> = self
            .registry
            .resource_types()
            .map(|rt| self.resource_type_doc(rt.definition()))
            .collect();
        Self::list_of(items)
    }

    pub(super) fn resource_type_response(&self, name: &str) -> Result<Response> {
        let rt = self
            .registry
            .resource_types()
            .find(|rt| {
                eq(&rt.definition().name, name)
                    || rt.definition().id.as_deref().is_some_and(|id| eq(id, name))
            })
            .ok_or_else(|| Error::not_found(format!("no resource type named {name}")))?;
        Ok(Response::json(
            200,
            &self.resource_type_doc(rt.definition()),
        ))
    }

    pub(super) fn schemas_response(&self) -> Response {
        let items: Vec<Schema> = self
            .registry
            .schemas()
            .map(|s| self.schema_doc(s))
            .collect();
        Self::list_of(items)
    }

    pub(super) fn schema_response(&self, id: &str) -> Result<Response> {
        let schema = self
            .registry
            .schema(id)
            .ok_or_else(|| Error::not_found(format!("no schema {id}")))?;
        Ok(Response::json(200, &self.schema_doc(schema)))
    }
}
