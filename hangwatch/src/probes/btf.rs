//! Just enough of a BTF reader to find where a field lives in a kernel struct.
//!
//! aya-ebpf has no CO-RE relocations for Rust programs, so hangwatch resolves the offsets its
//! probes need from the running kernel's BTF (`/sys/kernel/btf/vmlinux`, or `--btf PATH`) at
//! load time and hands them to the probes: which ones is [`super::offsets`]'s business
//! (`task_struct` fields, the memory cgroup chain of [`memcg_offsets`], the pid namespace
//! structs); this file only reads BTF.

use std::collections::HashMap;

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum BtfError {
    #[error("BTF data is truncated or malformed ({0})")]
    Malformed(&'static str),
    #[error("BTF has no struct {0}")]
    NoStruct(String),
    #[error("BTF struct {strukt} has no field {field}")]
    NoField { strukt: String, field: String },
}

const KIND_INT: u32 = 1;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_DECL_TAG: u32 = 17;
const KIND_TYPE_TAG: u32 = 18;
const KIND_ENUM64: u32 = 19;

#[derive(Debug, Clone)]
struct Member {
    name: u32,
    type_id: u32,
    /// Offset in bits from the start of the enclosing struct.
    bit_offset: u32,
}

#[derive(Debug, Clone)]
struct Type {
    name: u32,
    kind: u32,
    /// `size` for structs, `type` for modifiers and typedefs.
    size_or_type: u32,
    members: Vec<Member>,
}

/// Parsed BTF: the types and the string section.
pub struct Btf {
    types: Vec<Type>, // index = type id - 1
    strings: Vec<u8>,
    structs: HashMap<String, u32>,
    /// Every enumerator (name offset, value) of every `enum` (32-bit).
    enumerators: Vec<(u32, i32)>,
}

fn u16_at(d: &[u8], o: usize) -> Option<u16> {
    d.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]))
}
fn u32_at(d: &[u8], o: usize) -> Option<u32> {
    d.get(o..o + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

impl Btf {
    /// Reads the running kernel's BTF.
    pub fn from_sys_fs() -> std::io::Result<Vec<u8>> {
        std::fs::read("/sys/kernel/btf/vmlinux")
    }

    /// Parses little-endian BTF (the only kind hangwatch loads on).
    pub fn parse(data: &[u8]) -> Result<Self, BtfError> {
        let bad = BtfError::Malformed;
        if u16_at(data, 0) != Some(0xeb9f) {
            return Err(bad("bad magic"));
        }
        let hdr_len = u32_at(data, 4).ok_or(bad("header"))? as usize;
        let type_off = u32_at(data, 8).ok_or(bad("header"))? as usize;
        let type_len = u32_at(data, 12).ok_or(bad("header"))? as usize;
        let str_off = u32_at(data, 16).ok_or(bad("header"))? as usize;
        let str_len = u32_at(data, 20).ok_or(bad("header"))? as usize;
        let tstart = hdr_len + type_off;
        let types_bytes = data.get(tstart..tstart + type_len).ok_or(bad("type section"))?;
        let sstart = hdr_len + str_off;
        let strings = data.get(sstart..sstart + str_len).ok_or(bad("string section"))?.to_vec();

        let mut types = Vec::new();
        let mut enumerators = Vec::new();
        let mut o = 0usize;
        while o < types_bytes.len() {
            let d = types_bytes;
            let name = u32_at(d, o).ok_or(bad("type"))?;
            let info = u32_at(d, o + 4).ok_or(bad("type"))?;
            let size_or_type = u32_at(d, o + 8).ok_or(bad("type"))?;
            o += 12;
            let vlen = (info & 0xffff) as usize;
            let kind = (info >> 24) & 0x1f;
            let kind_flag = info >> 31 == 1;
            let mut members = Vec::new();
            match kind {
                KIND_INT | KIND_VAR | KIND_DECL_TAG => o += 4,
                KIND_ARRAY => o += 12,
                KIND_STRUCT | KIND_UNION => {
                    for i in 0..vlen {
                        let m = o + i * 12;
                        let off = u32_at(d, m + 8).ok_or(bad("member"))?;
                        members.push(Member {
                            name: u32_at(d, m).ok_or(bad("member"))?,
                            type_id: u32_at(d, m + 4).ok_or(bad("member"))?,
                            bit_offset: if kind_flag { off & 0x00ff_ffff } else { off },
                        });
                    }
                    o += vlen * 12;
                }
                KIND_ENUM => {
                    for i in 0..vlen {
                        let m = o + i * 8;
                        let name = u32_at(d, m).ok_or(bad("enumerator"))?;
                        let val = u32_at(d, m + 4).ok_or(bad("enumerator"))? as i32;
                        enumerators.push((name, val));
                    }
                    o += vlen * 8;
                }
                KIND_FUNC_PROTO => o += vlen * 8,
                KIND_DATASEC | KIND_ENUM64 => o += vlen * 12,
                _ => {}
            }
            types.push(Type { name, kind, size_or_type, members });
        }
        let mut btf = Btf { types, strings, structs: HashMap::new(), enumerators };
        for (i, t) in btf.types.iter().enumerate() {
            if t.kind == KIND_STRUCT && t.name != 0 {
                let n = btf.str_at(t.name).to_string();
                btf.structs.entry(n).or_insert(i as u32 + 1);
            }
        }
        Ok(btf)
    }

    fn str_at(&self, off: u32) -> &str {
        let s = self.strings.get(off as usize..).unwrap_or(&[]);
        let end = s.iter().position(|&b| b == 0).unwrap_or(s.len());
        std::str::from_utf8(&s[..end]).unwrap_or("")
    }

    fn ty(&self, id: u32) -> Option<&Type> {
        id.checked_sub(1).and_then(|i| self.types.get(i as usize))
    }

    /// Follows typedefs and qualifiers to the underlying type id.
    fn resolve(&self, mut id: u32) -> u32 {
        for _ in 0..32 {
            match self.ty(id) {
                Some(t)
                    if matches!(
                        t.kind,
                        KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG
                    ) =>
                {
                    id = t.size_or_type
                }
                _ => break,
            }
        }
        id
    }

    /// Finds `name` among the members of struct/union `id`, descending into anonymous
    /// structs and unions. Returns (bit offset, member type id).
    fn find_member(&self, id: u32, name: &str, depth: u32) -> Option<(u32, u32)> {
        let t = self.ty(self.resolve(id))?;
        if depth > 8 || !matches!(t.kind, KIND_STRUCT | KIND_UNION) {
            return None;
        }
        for m in &t.members {
            if m.name != 0 && self.str_at(m.name) == name {
                return Some((m.bit_offset, m.type_id));
            }
        }
        for m in t.members.iter().filter(|m| m.name == 0) {
            if let Some((off, ty)) = self.find_member(m.type_id, name, depth + 1) {
                // An offset past 2^32 bits is malformed BTF: not found.
                return Some((m.bit_offset.checked_add(off)?, ty));
            }
        }
        None
    }

    /// The value of enumerator `name` (e.g. `memory_cgrp_id` of `enum cgroup_subsys_id`).
    pub fn enum_value(&self, name: &str) -> Result<i32, BtfError> {
        self.enumerators
            .iter()
            .find(|(n, _)| self.str_at(*n) == name)
            .map(|(_, v)| *v)
            .ok_or_else(|| BtfError::NoField { strukt: "enum".into(), field: name.to_string() })
    }

    /// Whether `name` is one of the BTF's strings (a type, member or enumerator name).
    pub fn has_string(&self, name: &str) -> bool {
        self.strings.split(|&b| b == 0).any(|s| s == name.as_bytes())
    }

    /// `sizeof(struct strukt)`.
    pub fn struct_size(&self, strukt: &str) -> Result<u32, BtfError> {
        let id = *self.structs.get(strukt).ok_or_else(|| BtfError::NoStruct(strukt.to_string()))?;
        self.ty(id).map(|t| t.size_or_type).ok_or(BtfError::Malformed("struct id"))
    }

    /// Byte offset of `path` (e.g. `["se", "exec_start"]`) inside `struct strukt`.
    pub fn field_offset(&self, strukt: &str, path: &[&str]) -> Result<u32, BtfError> {
        let mut id =
            *self.structs.get(strukt).ok_or_else(|| BtfError::NoStruct(strukt.to_string()))?;
        let mut bits = 0u32;
        for field in path {
            let (off, ty) = self.find_member(id, field, 0).ok_or_else(|| BtfError::NoField {
                strukt: strukt.to_string(),
                field: path.join("."),
            })?;
            bits = bits.checked_add(off).ok_or(BtfError::Malformed("member offset"))?;
            id = ty;
        }
        Ok(bits / 8)
    }
}

/// Where the memory cgroup of a task is: `task->cgroups->subsys[memory_cgrp_id]->cgroup->kn->id`
/// (the kernfs id of the cgroup's directory, its inode number on 64-bit kernels).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemcgOffsets {
    pub task_cgroups: u32,
    /// Offset of `subsys[memory_cgrp_id]` in `struct css_set`.
    pub css_set_subsys: u32,
    pub css_cgroup: u32,
    pub cgroup_kn: u32,
    pub kn_id: u32,
}

pub fn memcg_offsets(b: &Btf) -> Result<MemcgOffsets, BtfError> {
    let id = b.enum_value("memory_cgrp_id")?;
    let id = u32::try_from(id).map_err(|_| BtfError::Malformed("memory_cgrp_id"))?;
    Ok(MemcgOffsets {
        task_cgroups: b.field_offset("task_struct", &["cgroups"])?,
        css_set_subsys: b.field_offset("css_set", &["subsys"])? + 8 * id,
        css_cgroup: b.field_offset("cgroup_subsys_state", &["cgroup"])?,
        cgroup_kn: b.field_offset("cgroup", &["kn"])?,
        kn_id: b.field_offset("kernfs_node", &["id"])?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a tiny BTF blob: struct inner { u64 a; u64 exec_start; };
    /// struct outer { int x; union { int y; struct inner se; }; } with the union anonymous.
    fn blob() -> Vec<u8> {
        let strings = b"\0int\0a\0exec_start\0inner\0outer\0x\0y\0se\0".to_vec();
        let s = |n: &str| -> u32 {
            let pos = strings
                .windows(n.len() + 1)
                .position(|w| &w[..n.len()] == n.as_bytes() && w[n.len()] == 0)
                .unwrap();
            pos as u32
        };
        let mut t = Vec::new();
        let mut push = |words: &[u32]| {
            for w in words {
                t.extend_from_slice(&w.to_le_bytes());
            }
        };
        // 1: int (8 bytes)
        push(&[s("int"), KIND_INT << 24, 8, 64]);
        // 2: struct inner
        push(&[s("inner"), (KIND_STRUCT << 24) | 2, 16]);
        push(&[s("a"), 1, 0]);
        push(&[s("exec_start"), 1, 64]);
        // 3: anonymous union { int y; struct inner se; }
        push(&[0, (KIND_UNION << 24) | 2, 16]);
        push(&[s("y"), 1, 0]);
        push(&[s("se"), 2, 0]);
        // 4: struct outer { int x; union ...; } (kind_flag set: bitfield encoding)
        push(&[s("outer"), (1 << 31) | (KIND_STRUCT << 24) | 2, 24]);
        push(&[s("x"), 1, 0]);
        push(&[0, 3, 64]);
        let mut d = Vec::new();
        d.extend_from_slice(&0xeb9fu16.to_le_bytes());
        d.push(1);
        d.push(0);
        for w in [24u32, 0, t.len() as u32, t.len() as u32, strings.len() as u32] {
            d.extend_from_slice(&w.to_le_bytes());
        }
        d.extend_from_slice(&t);
        d.extend_from_slice(&strings);
        d
    }

    #[test]
    fn finds_nested_field_through_anonymous_union() {
        let btf = Btf::parse(&blob()).unwrap();
        assert_eq!(btf.field_offset("outer", &["x"]), Ok(0));
        assert_eq!(btf.field_offset("outer", &["se", "exec_start"]), Ok(16));
        assert_eq!(btf.field_offset("inner", &["exec_start"]), Ok(8));
    }

    #[test]
    fn missing_things_are_errors_not_panics() {
        let btf = Btf::parse(&blob()).unwrap();
        assert!(matches!(btf.field_offset("nope", &["x"]), Err(BtfError::NoStruct(_))));
        assert!(matches!(btf.field_offset("outer", &["se", "zz"]), Err(BtfError::NoField { .. })));
        assert!(Btf::parse(b"garbage").is_err());
        assert!(Btf::parse(&blob()[..40]).is_err());
    }

    #[test]
    fn running_kernel_pid_namespace_layout() {
        let Ok(data) = Btf::from_sys_fs() else { return };
        let b = Btf::parse(&data).expect("kernel BTF parses");
        // struct upid { int nr; struct pid_namespace *ns; } on 64-bit kernels.
        assert_eq!(b.struct_size("upid"), Ok(16));
        assert_eq!(b.field_offset("upid", &["ns"]), Ok(8));
        assert!(
            b.field_offset("pid", &["numbers"]).unwrap()
                > b.field_offset("pid", &["level"]).unwrap()
        );
        assert!(b.field_offset("pid_namespace", &["ns", "inum"]).is_ok());
        assert!(b.struct_size("no_such_struct").is_err());
    }

    #[test]
    fn running_kernel_helpers_and_stack_layout() {
        let Ok(data) = Btf::from_sys_fs() else { return };
        let b = Btf::parse(&data).expect("kernel BTF parses");
        // Helpers are enumerators of `enum bpf_func_id`: one every kernel with BTF has, one
        // that no kernel has, a prefix of a real name that is not itself a string.
        assert!(b.has_string("BPF_FUNC_probe_read_kernel"));
        assert!(!b.has_string("BPF_FUNC_no_such_helper"));
        assert!(!b.has_string("BPF_FUNC_probe_read_ker"));
        // What reading the registers from the task's stack (kernels before 5.15) needs.
        assert!(b.field_offset("task_struct", &["stack"]).is_ok());
        // x86_64's is the 21 saved registers (the ptrace ABI); arm64's varies by version.
        #[cfg(target_arch = "x86_64")]
        assert_eq!(b.struct_size("pt_regs"), Ok(168));
    }

    #[test]
    fn running_kernel_task_struct_offsets() {
        let Ok(data) = Btf::from_sys_fs() else {
            eprintln!("skipped: /sys/kernel/btf/vmlinux not readable");
            return;
        };
        let btf = Btf::parse(&data).unwrap();
        let pid = btf.field_offset("task_struct", &["pid"]).unwrap();
        let tgid = btf.field_offset("task_struct", &["tgid"]).unwrap();
        assert_eq!(tgid, pid + 4, "pid and tgid are adjacent in task_struct");
        let es = btf.field_offset("task_struct", &["se", "exec_start"]).unwrap();
        assert!(es > 0);
    }

    #[test]
    fn running_kernel_memcg_path() {
        let Ok(data) = Btf::from_sys_fs() else {
            eprintln!("skipped: /sys/kernel/btf/vmlinux not readable");
            return;
        };
        let btf = Btf::parse(&data).unwrap();
        // The order of /proc/cgroups is the order of the subsystem ids.
        let order: Vec<String> = std::fs::read_to_string("/proc/cgroups")
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_whitespace().next().map(str::to_string))
            .collect();
        if let Some(i) = order.iter().position(|n| n == "memory") {
            assert_eq!(btf.enum_value("memory_cgrp_id"), Ok(i as i32), "{order:?}");
        }
        assert!(btf.enum_value("no_such_enumerator_xyz").is_err());
        let offs = memcg_offsets(&btf).expect("memcg offsets on this kernel");
        assert!(offs.css_set_subsys > 0 && offs.cgroup_kn > 0);
    }
}
