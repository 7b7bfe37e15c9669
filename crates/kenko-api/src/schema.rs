//! Bounded schemas for the Kubernetes types kenko's CRDs embed. k8s-openapi's own schemas for
//! `Condition` and `ResourceRequirements` carry no `maxLength`/`maxItems`/`maxProperties`,
//! and the API server sizes every unbounded string, list or map at the whole request's size
//! when it estimates a CEL rule's cost; every kenko CRD is bounded everywhere (a test walks
//! the generated schemas), so these replace them with the upstream limits made explicit.

use schemars::{json_schema, Schema, SchemaGenerator};

/// `status.conditions`: at most 16, keyed by type (the upstream `metav1.Condition` limits).
pub fn conditions(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "maxItems": 16,
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
        "items": {
            "type": "object",
            "description": "One aspect of the object's current state.",
            "required": ["lastTransitionTime", "message", "reason", "status", "type"],
            "properties": {
                "lastTransitionTime": {"type": "string", "format": "date-time", "maxLength": 64},
                "message": {"type": "string", "maxLength": 32768},
                "observedGeneration": {"type": "integer", "format": "int64", "minimum": 0},
                "reason": {"type": "string", "maxLength": 1024},
                "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
                "type": {"type": "string", "maxLength": 316}
            }
        },
        "default": []
    })
}

/// A container's resources (`requests` and `limits` of at most 16 resources each).
pub fn resources(_: &mut SchemaGenerator) -> Schema {
    let quantities = json_schema!({
        "type": "object",
        "maxProperties": 16,
        "additionalProperties": {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "maxLength": 64,
            "x-kubernetes-int-or-string": true
        }
    });
    json_schema!({
        "type": "object",
        "nullable": true,
        "description": "Compute resources of the app's container (requests and limits).",
        "properties": {
            "claims": {
                "type": "array",
                "maxItems": 8,
                "items": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "name": {"type": "string", "maxLength": 253},
                        "request": {"type": "string", "maxLength": 253}
                    }
                }
            },
            "limits": quantities.clone(),
            "requests": quantities
        }
    })
}
