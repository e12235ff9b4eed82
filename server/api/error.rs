//! The one mapping from domain errors to gRPC status codes.

use crate::auth::AuthError;
use crate::core::{Refusal, RefusalKind};
use crate::service::ServiceError;
use crate::store::StoreError;
use tonic::{Code, Status};

fn refusal(r: Refusal) -> Status {
    let code = match r.kind {
        RefusalKind::InvalidArgument => Code::InvalidArgument,
        RefusalKind::FailedPrecondition => Code::FailedPrecondition,
        RefusalKind::PermissionDenied => Code::PermissionDenied,
    };
    Status::new(code, r.message)
}

impl From<ServiceError> for Status {
    fn from(e: ServiceError) -> Status {
        match e {
            ServiceError::Refused(r) => refusal(r),
            ServiceError::NotFound(_) => Status::not_found(e.to_string()),
            ServiceError::Exhausted(x) => Status::resource_exhausted(x.0),
            ServiceError::Auth(AuthError::Unauthenticated(m)) => Status::unauthenticated(m),
            ServiceError::Auth(AuthError::Denied(m)) => Status::permission_denied(m),
            ServiceError::Store(s) => match s {
                StoreError::Refused(r) => refusal(r),
                StoreError::NotFound(_) => Status::not_found(s.to_string()),
                StoreError::AlreadyExists(_) => Status::already_exists(s.to_string()),
                StoreError::Unavailable(_) => Status::unavailable(s.to_string()),
                StoreError::Corrupt(_) => {
                    tracing::error!(error = %s, "store inconsistency");
                    Status::internal(s.to_string())
                }
            },
        }
    }
}

impl From<Refusal> for Status {
    fn from(r: Refusal) -> Status {
        refusal(r)
    }
}
