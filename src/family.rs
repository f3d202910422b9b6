//! A component family's registry (curvatures, bases, inner optimizers) and the macro that
//! writes it.
//!
//! Each component's own file holds everything about it: `pub static COMPONENTS` (its name(s),
//! parameter table and one-line summary), `pub fn build` (its constructor) and `pub fn state`
//! (the buffers it keeps). A family lists its member files once, in [`family!`]; the spec
//! parser, the constructors and the state layout all follow from that one list, so adding a
//! component is one new file plus one line there.

use crate::component::{ComponentSpec, Value, normalize_name};

/// Another name for a component, with some parameters preset (e.g. `normalize_by_ema`).
#[derive(Debug)]
pub struct Alias {
    pub name: &'static str,
    pub target: &'static str,
    pub preset: &'static [(&'static str, Value)],
}

/// A family's registry, read by the spec parser: every member file's components, in order.
#[derive(Debug)]
pub struct Family {
    /// "curvature", "basis" or "inner optimizer" (for messages).
    pub what: &'static str,
    /// One slice per member file (a file may define several components, e.g. `l_inv` and
    /// `l_inv_sqrt`).
    pub groups: &'static [&'static [ComponentSpec]],
    pub aliases: &'static [Alias],
}

impl Family {
    /// Every component, in the order of the registry.
    pub fn components(&self) -> impl Iterator<Item = &'static ComponentSpec> + use<> {
        let groups: &'static [&'static [ComponentSpec]] = self.groups;
        groups.iter().flat_map(|group| group.iter())
    }

    /// Looks a name up (case-insensitive, `_` and `-` ignored), resolving aliases.
    pub fn lookup(
        &self,
        name: &str,
    ) -> Option<(&'static ComponentSpec, &'static [(&'static str, Value)])> {
        let key = normalize_name(name);
        if let Some(spec) = self.components().find(|c| normalize_name(c.name) == key) {
            return Some((spec, &[]));
        }
        let alias = self
            .aliases
            .iter()
            .find(|a| normalize_name(a.name) == key)?;
        let spec = self.components().find(|c| c.name == alias.target)?;
        Some((spec, alias.preset))
    }

    /// Every accepted name, for "valid choices" messages.
    pub fn names(&self) -> String {
        let names: Vec<&str> = self
            .components()
            .map(|c| c.name)
            .chain(self.aliases.iter().map(|a| a.name))
            .collect();
        names.join(", ")
    }
}

/// Declares a family's member modules, its [`Family`] registry and its dispatch functions.
///
/// ```text
/// family! {
///     /// doc
///     pub static FAMILY = "basis", aliases: &[];
///     members: ggt, identity, …;
///     /// doc
///     dispatch: pub fn build[B: Backend + 'static](c: &Component, args: (&B, u64)) -> R;
/// }
/// ```
/// Each dispatch function calls the function of the same name in the member file whose
/// `COMPONENTS` holds `c.spec`. Generic parameters go in brackets; the first argument must be
/// the `&Component`, and there is at most one more.
macro_rules! family {
    (@dispatches $members:tt) => {};
    (@dispatches $members:tt $(#[$fdoc:meta])* dispatch: $vis:vis fn $f:ident [$($g:tt)*]
        ($($args:tt)*) -> $ret:ty; $($rest:tt)*) => {
        $crate::family::family!(@dispatch $members $(#[$fdoc])* $vis fn $f [$($g)*] ($($args)*) -> $ret);
        $crate::family::family!(@dispatches $members $($rest)*);
    };
    (@dispatch [$($member:ident)+] $(#[$fdoc:meta])* $vis:vis fn $f:ident [$($g:tt)*]
        ($c:ident : $cty:ty $(,)?) -> $ret:ty) => {
        $(#[$fdoc])*
        $vis fn $f<$($g)*>($c: $cty) -> $ret {
            $(if $member::COMPONENTS.iter().any(|s| std::ptr::eq(s, $c.spec)) {
                return $member::$f($c);
            })+
            unreachable!("{} is in no member file of its family", $c.spec.name)
        }
    };
    (@dispatch [$($member:ident)+] $(#[$fdoc:meta])* $vis:vis fn $f:ident [$($g:tt)*]
        ($c:ident : $cty:ty, $x:ident : $xty:ty $(,)?) -> $ret:ty) => {
        $(#[$fdoc])*
        $vis fn $f<$($g)*>($c: $cty, $x: $xty) -> $ret {
            $(if $member::COMPONENTS.iter().any(|s| std::ptr::eq(s, $c.spec)) {
                return $member::$f($c, $x);
            })+
            unreachable!("{} is in no member file of its family", $c.spec.name)
        }
    };
    (
        $(#[$doc:meta])*
        pub static $family:ident = $what:literal, aliases: $aliases:expr;
        members: $($member:ident),+ $(,)?;
        $($rest:tt)*
    ) => {
        $(pub mod $member;)+

        $(#[$doc])*
        pub static $family: $crate::family::Family = $crate::family::Family {
            what: $what,
            groups: &[$(&$member::COMPONENTS),+],
            aliases: $aliases,
        };

        $crate::family::family!(@dispatches [$($member)+] $($rest)*);
    };
}

pub(crate) use family;
