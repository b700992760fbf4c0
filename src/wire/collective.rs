//! Collectives, activity and watch events on the wire.

use serde::Serialize;

use super::ExperienceJson;
use crate::{
    Activity, Collective, CollectiveId, CollectiveStats, ExperienceId, WatchEvent, WatchEventType,
};

/// `Collective` in a response.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct CollectiveJson {
    pub id: CollectiveId,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<String>,
    pub embedding_dimension: u16,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<Collective> for CollectiveJson {
    fn from(c: Collective) -> Self {
        CollectiveJson {
            id: c.id,
            name: c.name,
            owner_id: c.owner_id,
            embedding_dimension: c.embedding_dimension,
            created_at: c.created_at.0,
            updated_at: c.updated_at.0,
        }
    }
}

/// `Activity` in a response.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct ActivityJson {
    pub agent_id: String,
    pub collective_id: CollectiveId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_task: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context_summary: Option<String>,
    pub started_at: i64,
    pub last_heartbeat: i64,
}

impl From<Activity> for ActivityJson {
    fn from(a: Activity) -> Self {
        ActivityJson {
            agent_id: a.agent_id,
            collective_id: a.collective_id,
            current_task: a.current_task,
            context_summary: a.context_summary,
            started_at: a.started_at.0,
            last_heartbeat: a.last_heartbeat.0,
        }
    }
}

/// `WatchEventType` as a snake_case string.
#[derive(Debug, Clone, Copy, Serialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum WatchEventTypeJson {
    Created,
    Updated,
    Archived,
    Deleted,
}

/// `WatchEvent` in a response (the experience without its embedding).
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct WatchEventJson {
    pub sequence: u64,
    pub experience_id: ExperienceId,
    pub collective_id: CollectiveId,
    pub event_type: WatchEventTypeJson,
    pub timestamp: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub experience: Option<ExperienceJson>,
}

impl From<WatchEvent> for WatchEventJson {
    fn from(e: WatchEvent) -> Self {
        WatchEventJson {
            sequence: e.sequence,
            experience_id: e.experience_id,
            collective_id: e.collective_id,
            event_type: match e.event_type {
                WatchEventType::Created => WatchEventTypeJson::Created,
                WatchEventType::Updated => WatchEventTypeJson::Updated,
                WatchEventType::Archived => WatchEventTypeJson::Archived,
                WatchEventType::Deleted => WatchEventTypeJson::Deleted,
            },
            timestamp: e.timestamp.0,
            experience: e.experience.map(|x| ExperienceJson::new(x, false)),
        }
    }
}

/// `CollectiveStats`, timestamps as integers, absent ones left out.
#[derive(Serialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct StatsJson {
    pub experience_count: u64,
    pub archived_count: u64,
    pub insight_count: u64,
    pub relation_count: u64,
    pub storage_bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oldest_experience: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub newest_experience: Option<i64>,
}

impl From<CollectiveStats> for StatsJson {
    fn from(s: CollectiveStats) -> Self {
        StatsJson {
            experience_count: s.experience_count,
            archived_count: s.archived_count,
            insight_count: s.insight_count,
            relation_count: s.relation_count,
            storage_bytes: s.storage_bytes,
            oldest_experience: s.oldest_experience.map(|t| t.0),
            newest_experience: s.newest_experience.map(|t| t.0),
        }
    }
}
