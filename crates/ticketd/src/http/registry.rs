//! Contracts, divisions and the staff directory (`/contracts`, `/divisions`, `/default-contract`,
//! `/staff`): read by staff,
//! changed by admins; every change is an event on the `registry` stream
//! (`GET /registry/history`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use ticket_app::CommandContext;
use ticket_app::registry::RegistryFailure;
use ticket_domain::registry::{ContractTerms, DivisionTerms, Registry, RegistryCommand, RegistryError, StaffTerms};
use ticket_domain::vocabulary::{ContractId, DivisionId, Role, StaffName};
use utoipa::ToSchema;

use super::AppState;
use super::extract::ApiJson;
use super::problem::{ApiError, FieldError};
use crate::auth::Caller;

/// A registry failure as the API says it.
pub fn registry_error(failure: RegistryFailure) -> ApiError {
    match failure {
        RegistryFailure::Refused(RegistryError::NothingToChange) => ApiError::new(
            StatusCode::CONFLICT,
            "nothing_to_change",
            "Nothing would change",
            "the registry already says this",
        ),
        RegistryFailure::Refused(RegistryError::NoSuchContract(id)) => {
            ApiError::not_found(format!("no contract is named '{id}'"))
        }
        RegistryFailure::Refused(
            refusal @ (RegistryError::Retired(_) | RegistryError::IsDefault(_) | RegistryError::Claimed { .. }),
        ) => {
            ApiError::new(StatusCode::CONFLICT, "registry_conflict", "Conflicts with the registry", refusal.to_string())
        }
        RegistryFailure::Refused(RegistryError::Invalid(reason)) => {
            ApiError::validation(reason.clone(), vec![FieldError { field: "body".into(), problem: reason }])
        }
        RegistryFailure::Store(error) => ApiError::from(ticket_app::AppError::Store(error)),
        RegistryFailure::Corrupt(reason) => ApiError::internal(reason),
    }
}

fn admin_only(caller: &Caller) -> Result<(), ApiError> {
    if caller.role == Role::Admin {
        Ok(())
    } else {
        Err(ApiError::forbidden("contracts, divisions and the staff directory are changed by admins"))
    }
}

fn context(caller: &Caller) -> CommandContext {
    CommandContext::new(ticket_domain::vocabulary::Actor::Staff { name: caller.name.clone(), role: caller.role })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ContractView {
    pub id: String,
    pub retired: bool,
    /// Tickets matching no contract are linked to this one.
    pub is_default: bool,
    pub terms: ContractTerms,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ContractList {
    pub default_contract: Option<String>,
    pub contracts: Vec<ContractView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DivisionView {
    pub id: String,
    pub terms: DivisionTerms,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DefaultContractBody {
    pub contract_id: String,
}

/// One change to the registry, with who made it.
#[derive(Debug, Serialize, ToSchema)]
pub struct RegistryChange {
    pub version: u64,
    pub occurred_at: chrono::DateTime<chrono::Utc>,
    #[schema(value_type = Object)]
    pub actor: serde_json::Value,
    pub event_type: String,
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
}

fn contract_view(registry: &Registry, id: &ContractId) -> Option<ContractView> {
    registry.contracts.get(id).map(|contract| ContractView {
        id: id.to_string(),
        retired: contract.retired,
        is_default: registry.default_contract.as_ref() == Some(id),
        terms: contract.terms.clone(),
    })
}

fn contract_id(text: &str) -> Result<ContractId, ApiError> {
    ContractId::parse(text).map_err(|e| ApiError::not_found(format!("'{text}' is not a contract id: {}", e.problem)))
}

/// Every contract, retired ones too.
#[utoipa::path(get, path = "/api/v1/contracts", tag = "registry",
    responses((status = 200, description = "The contracts", body = ContractList)))]
pub async fn list_contracts(State(state): State<AppState>, _caller: Caller) -> Result<Response, ApiError> {
    let registry = state.registry.load().await.map_err(registry_error)?;
    let contracts = registry.contracts.keys().filter_map(|id| contract_view(&registry, id)).collect();
    let default_contract = registry.default_contract.as_ref().map(ToString::to_string);
    Ok(axum::Json(ContractList { default_contract, contracts }).into_response())
}

/// Creates or changes a contract (admins).
#[utoipa::path(put, path = "/api/v1/contracts/{contract_id}", tag = "registry", request_body = ContractTerms,
    params(("contract_id" = String, Path, description = "The contract's id (letters, digits, '-', chosen by the admin)")),
    responses((status = 200, description = "The contract as saved", body = ContractView),
              (status = 404, description = "Not a contract id (`not_found`)", body = super::problem::Problem, content_type = "application/problem+json")))]
pub async fn put_contract(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    json: ApiJson<ContractTerms>,
) -> Result<Response, ApiError> {
    admin_only(&caller)?;
    let contract_id = contract_id(&id)?;
    let command = RegistryCommand::SaveContract { contract_id: contract_id.clone(), terms: json.value };
    let registry = state.registry.execute(command, &context(&caller)).await.map_err(registry_error)?;
    let view =
        contract_view(&registry, &contract_id).ok_or_else(|| ApiError::internal("the saved contract is missing"))?;
    Ok(axum::Json(view).into_response())
}

/// Retires a contract: it keeps its tickets but matches no new reporter (admins).
#[utoipa::path(post, path = "/api/v1/contracts/{contract_id}/retire", tag = "registry",
    params(("contract_id" = String, Path, description = "The contract's id")),
    responses((status = 200, description = "The contract, retired", body = ContractView),
              (status = 404, description = "No such contract (`not_found`)", body = super::problem::Problem, content_type = "application/problem+json")))]
pub async fn retire_contract(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    admin_only(&caller)?;
    let contract_id = contract_id(&id)?;
    let command = RegistryCommand::RetireContract { contract_id: contract_id.clone() };
    let registry = state.registry.execute(command, &context(&caller)).await.map_err(registry_error)?;
    let view = contract_view(&registry, &contract_id).ok_or_else(|| ApiError::internal("the contract is missing"))?;
    Ok(axum::Json(view).into_response())
}

/// Sets the contract for reporters no contract names (admins).
#[utoipa::path(put, path = "/api/v1/default-contract", tag = "registry", request_body = DefaultContractBody,
    responses((status = 200, description = "The default contract", body = ContractView)))]
pub async fn set_default_contract(
    State(state): State<AppState>,
    caller: Caller,
    json: ApiJson<DefaultContractBody>,
) -> Result<Response, ApiError> {
    admin_only(&caller)?;
    let contract_id = ContractId::parse(&json.value.contract_id).map_err(|e| {
        ApiError::validation(e.to_string(), vec![FieldError { field: "contract_id".into(), problem: e.problem }])
    })?;
    let command = RegistryCommand::SetDefaultContract { contract_id: contract_id.clone() };
    let registry = state.registry.execute(command, &context(&caller)).await.map_err(registry_error)?;
    let view = contract_view(&registry, &contract_id).ok_or_else(|| ApiError::internal("the contract is missing"))?;
    Ok(axum::Json(view).into_response())
}

/// Every division.
#[utoipa::path(get, path = "/api/v1/divisions", tag = "registry",
    responses((status = 200, description = "The divisions", body = Vec<DivisionView>)))]
pub async fn list_divisions(State(state): State<AppState>, _caller: Caller) -> Result<Response, ApiError> {
    let registry = state.registry.load().await.map_err(registry_error)?;
    let divisions: Vec<DivisionView> = registry
        .divisions
        .iter()
        .map(|(id, terms)| DivisionView { id: id.to_string(), terms: terms.clone() })
        .collect();
    Ok(axum::Json(divisions).into_response())
}

/// Creates or changes a division (admins).
#[utoipa::path(put, path = "/api/v1/divisions/{division_id}", tag = "registry", request_body = DivisionTerms,
    params(("division_id" = String, Path, description = "The division's id, as escalations name it")),
    responses((status = 200, description = "The division as saved", body = DivisionView),
              (status = 404, description = "Not a division id (`not_found`)", body = super::problem::Problem, content_type = "application/problem+json")))]
pub async fn put_division(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    json: ApiJson<DivisionTerms>,
) -> Result<Response, ApiError> {
    admin_only(&caller)?;
    let division_id = DivisionId::parse(&id)
        .map_err(|e| ApiError::not_found(format!("'{id}' is not a division id: {}", e.problem)))?;
    let command = RegistryCommand::SaveDivision { division_id: division_id.clone(), terms: json.value };
    let registry = state.registry.execute(command, &context(&caller)).await.map_err(registry_error)?;
    let terms =
        registry.divisions.get(&division_id).cloned().ok_or_else(|| ApiError::internal("the division is missing"))?;
    Ok(axum::Json(DivisionView { id: division_id.to_string(), terms }).into_response())
}

/// A member of staff the service mails, by the name tickets are assigned to.
#[derive(Debug, Serialize, ToSchema)]
pub struct StaffView {
    pub name: String,
    pub terms: StaffTerms,
}

/// The staff directory: whom the service mails about their tickets (an SLA breach on a ticket
/// assigned to them).
#[utoipa::path(get, path = "/api/v1/staff", tag = "registry",
    responses((status = 200, description = "The staff directory", body = Vec<StaffView>)))]
pub async fn list_staff(State(state): State<AppState>, _caller: Caller) -> Result<Response, ApiError> {
    let registry = state.registry.load().await.map_err(registry_error)?;
    let staff: Vec<StaffView> =
        registry.staff.iter().map(|(name, terms)| StaffView { name: name.to_string(), terms: terms.clone() }).collect();
    Ok(axum::Json(staff).into_response())
}

/// Sets a staff member's address (admins).
#[utoipa::path(put, path = "/api/v1/staff/{name}", tag = "registry", request_body = StaffTerms,
    params(("name" = String, Path, description = "The name tickets are assigned to (the API token's name)")),
    responses((status = 200, description = "The entry as saved", body = StaffView),
              (status = 404, description = "Not a staff name (`not_found`)", body = super::problem::Problem, content_type = "application/problem+json")))]
pub async fn put_staff(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    json: ApiJson<StaffTerms>,
) -> Result<Response, ApiError> {
    admin_only(&caller)?;
    let staff_name = StaffName::parse(&name)
        .map_err(|e| ApiError::not_found(format!("'{name}' is not a staff name: {}", e.problem)))?;
    let command = RegistryCommand::SaveStaff { name: staff_name.clone(), terms: json.value };
    let registry = state.registry.execute(command, &context(&caller)).await.map_err(registry_error)?;
    let terms = registry.staff.get(&staff_name).cloned().ok_or_else(|| ApiError::internal("the entry is missing"))?;
    Ok(axum::Json(StaffView { name: staff_name.to_string(), terms }).into_response())
}

/// Every change to contracts and divisions, oldest first, with who made it (auditors, admins).
#[utoipa::path(get, path = "/api/v1/registry/history", tag = "registry",
    responses((status = 200, description = "The changes", body = Vec<RegistryChange>),
              (status = 403, description = "Not an auditor or admin (`forbidden`)", body = super::problem::Problem, content_type = "application/problem+json")))]
pub async fn history(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    if !matches!(caller.role, Role::Auditor | Role::Admin) {
        return Err(ApiError::forbidden("the registry's history is for auditors and admins"));
    }
    let changes: Vec<RegistryChange> = state
        .registry
        .history()
        .await
        .map_err(registry_error)?
        .into_iter()
        .map(|record| RegistryChange {
            version: record.version,
            occurred_at: record.occurred_at,
            actor: serde_json::to_value(&record.actor).unwrap_or_default(),
            event_type: record.event.event_type().to_owned(),
            payload: record.event.to_payload(),
        })
        .collect();
    Ok(axum::Json(changes).into_response())
}
