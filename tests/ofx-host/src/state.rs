//! The host's state, in one place: descriptors and instances ([`Effect`]) with their
//! clips, parameters, messages and counters, and what the host offers and recorded.
//! The suites' functions read and write only these.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

use crate::image::ImageBuf;
use crate::ofx::*;
use crate::property::{PropSet, Val};

pub struct Clip {
    pub name: String,
    pub props: Box<PropSet>,
    pub image: Mutex<Option<ImageBuf>>,
}

pub struct Param {
    pub name: String,
    pub kind: String,
    pub props: Box<PropSet>,
    pub value: Mutex<Val>,
}

#[derive(Default)]
pub struct ParamSet {
    pub props: Box<PropSet>,
    pub params: Mutex<Vec<Box<Param>>>,
}

#[derive(Clone, Debug)]
pub struct Message {
    pub kind: String,
    pub id: String,
    pub text: String,
    pub persistent: bool,
}

/// A descriptor or an instance; its address is the OFX handle.
#[derive(Default)]
pub struct Effect {
    pub props: Box<PropSet>,
    pub params: Box<ParamSet>,
    pub clips: Mutex<Vec<Box<Clip>>>,
    /// abort() answers 1 once it has been polled more than this many times (-1: never).
    pub abort_after: AtomicI64,
    pub polls: AtomicU64,
    pub messages: Mutex<Vec<Message>>,
    pub persistent: Mutex<Option<String>>,
    pub progress_starts: AtomicU64,
    /// The label of every progressStart, in order.
    pub progress_labels: Mutex<Vec<String>>,
    pub progress_updates: AtomicU64,
    pub progress_ends: AtomicU64,
}

impl Effect {
    pub fn new() -> Box<Effect> {
        let e = Box::<Effect>::default();
        e.abort_after.store(-1, Ordering::SeqCst);
        e
    }
    pub fn handle(&self) -> Handle {
        self as *const Effect as Handle
    }
    pub fn clip(&self, name: &str) -> Option<&Clip> {
        let g = self.clips.lock().unwrap();
        g.iter()
            .find(|c| c.name == name)
            .map(|c| unsafe { &*(c.as_ref() as *const Clip) })
    }
    pub fn param(&self, name: &str) -> Option<&Param> {
        let g = self.params.params.lock().unwrap();
        g.iter()
            .find(|c| c.name == name)
            .map(|c| unsafe { &*(c.as_ref() as *const Param) })
    }
    pub fn param_names(&self) -> Vec<String> {
        self.params
            .params
            .lock()
            .unwrap()
            .iter()
            .map(|p| p.name.clone())
            .collect()
    }
}

pub(crate) unsafe fn effect<'a>(h: Handle) -> Option<&'a Effect> {
    (h as *const Effect).as_ref()
}

/// Which optional suites the host offers (to test plug-in fallbacks).
pub static OFFER_PROGRESS: AtomicBool = AtomicBool::new(true);
pub static OFFER_MESSAGE_V2: AtomicBool = AtomicBool::new(true);
/// Every suite fetch: (name, version, granted).
pub static FETCHES: Mutex<Vec<(String, i32, bool)>> = Mutex::new(Vec::new());

/// Writes the handle of `props` (None: the object's handle was bad) to `*out`.
pub(crate) unsafe fn props_out(props: Option<&PropSet>, out: *mut Handle) -> OfxStatus {
    match props {
        Some(p) => {
            *out = p.handle();
            STAT_OK
        }
        None => STAT_ERR_BAD_HANDLE,
    }
}

/// A found clip or parameter: its handle to `*out`, its property set to `*props` if asked.
pub(crate) unsafe fn found(
    object: Handle,
    props: &PropSet,
    out: *mut Handle,
    props_out: *mut Handle,
) -> OfxStatus {
    *out = object;
    if !props_out.is_null() {
        *props_out = props.handle();
    }
    STAT_OK
}
