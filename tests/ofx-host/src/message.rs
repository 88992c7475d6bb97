//! The message suite (v1 and v2): messages and the persistent message are recorded on
//! the effect.

use std::ffi::{c_char, c_int};

use crate::name_of;
use crate::ofx::*;
use crate::shim::*;
use crate::state::{effect, Message};

pub(crate) unsafe extern "C" fn cb_message(
    h: Handle,
    ty: *const c_char,
    id: *const c_char,
    text: *const c_char,
    persistent: c_int,
) -> OfxStatus {
    let m = Message {
        kind: if ty.is_null() {
            String::new()
        } else {
            name_of(ty)
        },
        id: if id.is_null() {
            String::new()
        } else {
            name_of(id)
        },
        text: name_of(text),
        persistent: persistent != 0,
    };
    eprintln!(
        "[ofx-host] {} {}: {}",
        if m.persistent {
            "persistent"
        } else {
            "message"
        },
        m.kind,
        m.text
    );
    if let Some(e) = effect(h) {
        if m.persistent {
            *e.persistent.lock().unwrap() = Some(m.text.clone());
        }
        e.messages.lock().unwrap().push(m);
    }
    STAT_OK
}
pub(crate) unsafe extern "C" fn clear_persistent(h: Handle) -> OfxStatus {
    if let Some(e) = effect(h) {
        *e.persistent.lock().unwrap() = None;
    }
    STAT_OK
}

pub(crate) static MESSAGE_SUITE: MessageSuiteV2 = MessageSuiteV2 {
    message: ofxshim_message,
    set_persistent_message: ofxshim_set_persistent_message,
    clear_persistent_message: clear_persistent,
};
