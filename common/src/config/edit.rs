//! Derived configurations: a configuration's text with some keys set, removed or arrays
//! shortened, everything else (comments, order, layout) kept. This is the one way the
//! project writes a configuration from another: `lab run`'s `--scratch`, `--levels` and
//! `--duration`, `lab chaos`'s scenarios, and the tests, each from a shipped file such
//! as [`super::DEFAULT_TOML`].
//!
//! # Guarantees
//!
//! - Keys are named as errors name them ([`KeyPath`]: `symbols[1].rate_per_s`), so a
//!   key is written the same way where it is set and where it is reported.
//! - A value that replaces another keeps the old one's place, surrounding whitespace
//!   and trailing comment, so the edited key stays on its line (and an error about it
//!   keeps its line and column). A new key goes at the end of its table; a missing table
//!   on the way to it is created (at the end of the file).
//! - An [`Edit`] with no edits gives back the text it was made from, byte for byte.
//! - Nothing here validates: the result is parsed and validated like any configuration
//!   ([`super::Config::parse`]). An edit that cannot be made (a key path that is not
//!   one, an element past an array's end, a key under a value) makes
//!   [`Edit::finish`] fail with the first such problem; later edits are not tried.
//!
//! Start-up and test code: parsing and printing allocate.
//!
//! # Examples
//!
//! ```
//! use common::config::edit::Edit;
//!
//! let base = "seed = 1\n\n[ring]\ncapacity = 65536  # slots\n\n[[symbols]]\nname = \"A\"\n\n[[symbols]]\nname = \"B\"\n";
//! let text = Edit::new(base)
//!     .set("ring.capacity", 1024)
//!     .set("ring.path", "/dev/shm/x.ring")
//!     .set("engine.levels", 2)
//!     .truncate("symbols", 1)
//!     .finish()
//!     .unwrap();
//! assert_eq!(
//!     text,
//!     "seed = 1\n\n[ring]\ncapacity = 1024  # slots\npath = \"/dev/shm/x.ring\"\n\n[[symbols]]\nname = \"A\"\n\n[engine]\nlevels = 2\n"
//! );
//! assert!(Edit::new(base).set("symbols[5].name", "C").finish().is_err());
//! ```

use super::{KeyPath, Seg};
use serde::Serialize;
use toml_edit::{DocumentMut, Item, Table, TableLike, Value};

/// Why an [`Edit`] could not be made.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// The text is not TOML.
    #[error("{0}")]
    Parse(toml_edit::TomlError),
    /// An edit names a key it cannot reach or a value TOML cannot hold.
    #[error("{key}: {problem}")]
    Key {
        /// The key path as given, or the part of it that could not be reached.
        key: String,
        /// What is wrong.
        problem: String,
    },
}

/// A configuration's text being edited; see the [module documentation](self).
#[derive(Debug)]
pub struct Edit {
    text: String,
    doc: Result<DocumentMut, EditError>,
    edited: bool,
}

impl Edit {
    /// Starts editing `text` (the contents of a configuration file).
    pub fn new(text: &str) -> Edit {
        Edit {
            text: text.to_string(),
            doc: text.parse::<DocumentMut>().map_err(EditError::Parse),
            edited: false,
        }
    }

    /// Sets `key` (a [`KeyPath`]) to `value`: any serde value TOML can hold (integers,
    /// floats, booleans, strings, paths, config enums such as
    /// [`Scratch`](super::Scratch), arrays).
    pub fn set(self, key: &str, value: impl Serialize) -> Edit {
        self.apply(key, |doc, path| {
            let value = value
                .serialize(toml_edit::ser::ValueSerializer::new())
                .map_err(|e| format!("cannot be written as TOML: {e}"))?;
            let (last, parent) = path.split_last().ok_or("names no key")?;
            match (walk(doc, parent, true)?, last) {
                (place, Seg::Key(k)) => {
                    let table = place.table().ok_or_else(|| not_a(parent, "a table"))?;
                    set_keeping_decor(table, k, value);
                }
                (Place::Item(item), Seg::Index(i)) => set_element(item.as_array_mut(), *i, value)?,
                (Place::Value(v), Seg::Index(i)) => set_element(v.as_array_mut(), *i, value)?,
                (Place::Table(_), Seg::Index(_)) => return Err(not_a(parent, "an array")),
            }
            Ok(())
        })
    }

    /// Removes `key` (a key, or an element of an array), which must be there.
    pub fn remove(self, key: &str) -> Edit {
        self.apply(key, |doc, path| {
            let (last, parent) = path.split_last().ok_or("names no key")?;
            let missing = || format!("{} is not there", KeyPath(path.to_vec()));
            match (walk(doc, parent, false)?, last) {
                (place, Seg::Key(k)) => {
                    let table = place.table().ok_or_else(|| not_a(parent, "a table"))?;
                    table.remove(k).ok_or_else(missing)?;
                }
                (Place::Item(item), Seg::Index(i)) => {
                    if let Some(tables) = item.as_array_of_tables_mut() {
                        (*i < tables.len()).then_some(()).ok_or_else(missing)?;
                        tables.remove(*i);
                    } else {
                        let array = item
                            .as_array_mut()
                            .ok_or_else(|| not_a(parent, "an array"))?;
                        (*i < array.len()).then_some(()).ok_or_else(missing)?;
                        array.remove(*i);
                    }
                }
                (Place::Value(v), Seg::Index(i)) => {
                    let array = v.as_array_mut().ok_or_else(|| not_a(parent, "an array"))?;
                    (*i < array.len()).then_some(()).ok_or_else(missing)?;
                    array.remove(*i);
                }
                (Place::Table(_), Seg::Index(_)) => return Err(not_a(parent, "an array")),
            }
            Ok(())
        })
    }

    /// Keeps the first `len` elements of the array (or array of tables) at `key`.
    pub fn truncate(self, key: &str, len: usize) -> Edit {
        self.apply(key, |doc, path| {
            let mut kept = 0;
            let mut keep = || {
                kept += 1;
                kept <= len
            };
            let array = || not_a(path, "an array");
            match walk(doc, path, false)? {
                Place::Item(item) if item.is_array_of_tables() => {
                    item.as_array_of_tables_mut()
                        .ok_or_else(array)?
                        .retain(|_| keep());
                }
                Place::Item(item) => item.as_array_mut().ok_or_else(array)?.retain(|_| keep()),
                Place::Value(v) => v.as_array_mut().ok_or_else(array)?.retain(|_| keep()),
                Place::Table(_) => return Err(array()),
            }
            Ok(())
        })
    }

    /// The edited text: the text given to [`Edit::new`] itself if nothing was edited.
    pub fn finish(self) -> Result<String, EditError> {
        let doc = self.doc?;
        Ok(if self.edited {
            doc.to_string()
        } else {
            self.text
        })
    }

    /// Runs `edit` on the document with `key` parsed, unless an earlier step failed.
    fn apply(
        mut self,
        key: &str,
        edit: impl FnOnce(&mut DocumentMut, &[Seg]) -> Result<(), String>,
    ) -> Edit {
        if let Ok(doc) = &mut self.doc {
            let result = match KeyPath::parse(key) {
                Some(path) => edit(doc, &path.0),
                None => Err("is not a key path like `symbols[1].rate_per_s`".into()),
            };
            match result {
                Ok(()) => self.edited = true,
                Err(problem) => {
                    self.doc = Err(EditError::Key {
                        key: key.to_string(),
                        problem,
                    })
                }
            }
        }
        self
    }
}

/// Where a walk along a key path has got to.
enum Place<'a> {
    /// A key's item: a value, a table, or an array of tables.
    Item(&'a mut Item),
    /// An element of an array of tables.
    Table(&'a mut Table),
    /// An element of an inline array.
    Value(&'a mut Value),
}

impl<'a> Place<'a> {
    /// The place as a table, if it is one (a table, an inline table, an element of an
    /// array of tables).
    fn table(self) -> Option<&'a mut dyn TableLike> {
        match self {
            Place::Item(item) => item.as_table_like_mut(),
            Place::Table(table) => Some(table),
            Place::Value(value) => value.as_inline_table_mut().map(|t| t as &mut dyn TableLike),
        }
    }
}

/// The place `path` names in `doc`; with `create`, missing tables on the way are made.
fn walk<'a>(doc: &'a mut DocumentMut, path: &[Seg], create: bool) -> Result<Place<'a>, String> {
    let mut place = Place::Item(doc.as_item_mut());
    for (n, seg) in path.iter().enumerate() {
        let here = &path[..n];
        place = match (place, seg) {
            (place, Seg::Key(k)) => {
                let inline = matches!(&place, Place::Value(_) | Place::Item(Item::Value(_)));
                let table = place.table().ok_or_else(|| not_a(here, "a table"))?;
                if create && !table.contains_key(k) {
                    let new = if inline {
                        Item::Value(Value::InlineTable(Default::default()))
                    } else {
                        // Implicit: no `[a]` header above `[a.b]` unless `a` gets keys.
                        let mut table = Table::new();
                        table.set_implicit(true);
                        Item::Table(table)
                    };
                    table.insert(k, new);
                }
                let missing = || format!("{} is not there", KeyPath(path[..=n].to_vec()));
                Place::Item(table.get_mut(k).ok_or_else(missing)?)
            }
            (Place::Item(item), Seg::Index(i)) => {
                let past = || past_end(&path[..=n]);
                if item.is_array_of_tables() {
                    let tables = item.as_array_of_tables_mut().ok_or_else(past)?;
                    Place::Table(tables.get_mut(*i).ok_or_else(past)?)
                } else {
                    let array = item.as_array_mut().ok_or_else(|| not_a(here, "an array"))?;
                    Place::Value(array.get_mut(*i).ok_or_else(past)?)
                }
            }
            (Place::Value(v), Seg::Index(i)) => {
                let array = v.as_array_mut().ok_or_else(|| not_a(here, "an array"))?;
                Place::Value(array.get_mut(*i).ok_or_else(|| past_end(&path[..=n]))?)
            }
            (Place::Table(_), Seg::Index(_)) => return Err(not_a(here, "an array")),
        };
    }
    Ok(place)
}

/// Sets `key` to `value` in `table`, keeping the old value's surrounding whitespace and
/// trailing comment.
fn set_keeping_decor(table: &mut dyn TableLike, key: &str, mut value: Value) {
    match table.get_mut(key) {
        Some(item) => {
            if let Some(old) = item.as_value() {
                *value.decor_mut() = old.decor().clone();
            }
            *item = Item::Value(value);
        }
        None => {
            table.insert(key, Item::Value(value));
        }
    }
}

/// Replaces element `i` of `array` (keeping its decor).
fn set_element(array: Option<&mut toml_edit::Array>, i: usize, value: Value) -> Result<(), String> {
    let array = array.ok_or("is not an array of values")?;
    if i >= array.len() {
        return Err(format!(
            "index {i} is past the end (the array has {})",
            array.len()
        ));
    }
    array.replace(i, value);
    Ok(())
}

fn not_a(path: &[Seg], what: &str) -> String {
    if path.is_empty() {
        format!("the top level is not {what}")
    } else {
        format!("{} is not {what}", KeyPath(path.to_vec()))
    }
}

fn past_end(path: &[Seg]) -> String {
    format!("{} is past the end of its array", KeyPath(path.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Scratch, DEFAULT_TOML};
    use std::path::Path;

    fn edited(edit: Edit) -> String {
        edit.finish().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn no_edit_is_the_text_itself() {
        let odd = "seed=1   # odd spacing\n[ring]\n  capacity =   4096\n";
        assert_eq!(edited(Edit::new(odd)), odd);
        assert_eq!(edited(Edit::new(DEFAULT_TOML)), DEFAULT_TOML);
    }

    #[test]
    fn an_edited_key_keeps_its_line_and_comment() {
        let text = edited(Edit::new(DEFAULT_TOML).set("ring.capacity", 1024));
        let line = |t: &str| t.lines().position(|l| l.starts_with("capacity")).unwrap();
        assert_eq!(line(&text), line(DEFAULT_TOML));
        assert!(
            text.contains("capacity = 1024            # 64-byte slots"),
            "{text}"
        );
        assert_eq!(text.lines().count(), DEFAULT_TOML.lines().count());
        assert!(text.starts_with("# Default run:"), "{text}");
    }

    #[test]
    fn the_default_derives_a_valid_run() {
        let dir = std::env::temp_dir().join("x.ring");
        let text = edited(
            Edit::new(DEFAULT_TOML)
                .set("ring.path", &dir)
                .set("ring.lossless", true)
                .set("duration_s", 2.0)
                .set("engine.scratch", Scratch::Pool)
                .set("symbols[1].rate_per_s", 500)
                .set("feed.history.retention_ticks", 1_000_u64)
                .set("cores.cold", [0, 1])
                .truncate("symbols", 2)
                .remove("log.out_dir"),
        );
        let c = Config::parse(&text, Path::new("d.toml"), &[0, 1]).unwrap();
        assert_eq!(c.ring.path, dir);
        assert!(c.ring.lossless);
        assert_eq!(c.duration_s, 2.0);
        assert_eq!(c.engine.scratch, Scratch::Pool);
        assert_eq!(c.symbols.len(), 2);
        assert_eq!(c.symbols[1].rate_per_s, 500.0);
        assert_eq!(c.feed.history.max_ticks(), 1_000);
        assert_eq!(c.cores.cold, [0, 1]);
        assert_eq!(c.log.out_dir, Path::new("results/latest"), "the default");
    }

    #[test]
    fn elements_of_inline_arrays_and_new_tables() {
        let text = edited(
            Edit::new("a = [1, 2, 3]  # three\n")
                .set("a[1]", 20)
                .remove("a[0]")
                .set("t.u.v", "w"),
        );
        assert_eq!(text, "a = [ 20, 3]  # three\n\n[t.u]\nv = \"w\"\n");
    }

    #[test]
    fn impossible_edits_say_which_key() {
        let cases = [
            (Edit::new("a = [").set("a", 1), "TOML parse error"),
            (Edit::new("a = 1").set("a..b", 1), "a..b: is not a key path"),
            (Edit::new("a = 1").set("a.b", 1), "a.b: a is not a table"),
            (
                Edit::new("a = [1]").set("a[3]", 1),
                "a[3]: index 3 is past the end",
            ),
            (
                Edit::new("[[s]]\nx = 1").set("s[1].x", 2),
                "s[1].x: s[1] is past the end",
            ),
            (Edit::new("a = 1").remove("b"), "b: b is not there"),
            (Edit::new("a = 1").truncate("a", 0), "a: a is not an array"),
            (
                Edit::new("a = 1").set("b", ()),
                "b: cannot be written as TOML",
            ),
            (
                Edit::new("a = 1").remove("b").set("a", 2),
                "b: b is not there",
            ),
        ];
        for (edit, expected) in cases {
            let e = edit.finish().unwrap_err().to_string();
            assert!(e.starts_with(expected), "wanted {expected:?}, got {e:?}");
        }
    }
}
