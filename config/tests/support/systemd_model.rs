//! A model of systemd's environment-file reader, shared by the property tests
//! (`envfile_props.rs`), the fuzz-corpus replay test and the `envfile` fuzz target (which
//! includes this file by path), so all three compare the reader against the same model.

/// A line-at-a-time model of systemd's `parse_env_file_internal` (v254 and later): the pairs it
/// pushes, in order, before its callers drop invalid names.
pub fn systemd_model(text: &str) -> Vec<(String, String)> {
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        PreKey,
        Key,
        PreValue,
        Value,
        ValueEscape,
        Single,
        Double,
        DoubleEscape,
        Comment,
        CommentEscape,
    }
    let is_ws = |c: char| matches!(c, ' ' | '\t' | '\n' | '\r');
    let is_nl = |c: char| matches!(c, '\n' | '\r');

    let mut out = Vec::new();
    let mut state = State::PreKey;
    let (mut key, mut value) = (Vec::<char>::new(), Vec::<char>::new());
    let (mut last_key_ws, mut last_value_ws) = (None::<usize>, None::<usize>);

    let push = |key: &mut Vec<char>,
                value: &mut Vec<char>,
                last_key_ws: Option<usize>,
                trim_value: Option<usize>,
                out: &mut Vec<(String, String)>| {
        if let Some(at) = last_key_ws {
            key.truncate(at);
        }
        if let Some(at) = trim_value {
            value.truncate(at);
        }
        out.push((key.iter().collect(), value.iter().collect()));
        key.clear();
        value.clear();
    };

    for c in text.chars() {
        state = match state {
            State::PreKey if c == '#' || c == ';' => State::Comment,
            State::PreKey if is_ws(c) => State::PreKey,
            State::PreKey => {
                last_key_ws = None;
                key.push(c);
                State::Key
            }
            State::Key if is_nl(c) => {
                key.clear();
                State::PreKey
            }
            State::Key if c == '=' => {
                last_value_ws = None;
                State::PreValue
            }
            State::Key => {
                if !is_ws(c) {
                    last_key_ws = None;
                } else if last_key_ws.is_none() {
                    last_key_ws = Some(key.len());
                }
                key.push(c);
                State::Key
            }
            State::PreValue if is_nl(c) => {
                push(&mut key, &mut value, last_key_ws, None, &mut out);
                State::PreKey
            }
            State::PreValue if c == '\'' => State::Single,
            State::PreValue if c == '"' => State::Double,
            State::PreValue if c == '\\' => State::ValueEscape,
            State::PreValue if is_ws(c) => State::PreValue,
            State::PreValue => {
                value.push(c);
                State::Value
            }
            State::Value if is_nl(c) => {
                push(&mut key, &mut value, last_key_ws, last_value_ws, &mut out);
                State::PreKey
            }
            State::Value if c == '\\' => {
                last_value_ws = None;
                State::ValueEscape
            }
            State::Value => {
                if !is_ws(c) {
                    last_value_ws = None;
                } else if last_value_ws.is_none() {
                    last_value_ws = Some(value.len());
                }
                value.push(c);
                State::Value
            }
            State::ValueEscape => {
                if !is_nl(c) {
                    value.push(c);
                }
                State::Value
            }
            State::Single if c == '\'' => State::PreValue,
            State::Single => {
                value.push(c);
                State::Single
            }
            State::Double if c == '"' => State::PreValue,
            State::Double if c == '\\' => State::DoubleEscape,
            State::Double => {
                value.push(c);
                State::Double
            }
            State::DoubleEscape => {
                if matches!(c, '"' | '\\' | '`' | '$') {
                    value.push(c);
                } else if c != '\n' {
                    value.extend(['\\', c]);
                }
                State::Double
            }
            State::Comment if c == '\\' => State::CommentEscape,
            State::Comment if is_nl(c) => State::PreKey,
            State::Comment => State::Comment,
            State::CommentEscape if is_nl(c) => State::PreKey,
            State::CommentEscape => State::Comment,
        };
    }
    let pending = [
        State::PreValue,
        State::Value,
        State::ValueEscape,
        State::Single,
        State::Double,
        State::DoubleEscape,
    ];
    if pending.contains(&state) {
        let trim = if state == State::Value { last_value_ws } else { None };
        push(&mut key, &mut value, last_key_ws, trim, &mut out);
    }
    out
}
